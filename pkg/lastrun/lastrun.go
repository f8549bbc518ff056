// Package lastrun keeps the outcome of a user's last resolve or release,
// so that `portclaim status` can show what happened during a switch whose
// output went to a journal nobody reads (home-manager as a NixOS module
// runs in home-manager-<user>.service). The user writes it, in their own
// state directory; root only ever reads it there (package safeopen). A
// run root makes for a user (root mode) is part of that user's story
// too: root records it in a directory of its own (RootDir), never in the
// user's home, and status shows whichever of the two is newer.
package lastrun

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/policy"
	"github.com/portclaim/portclaim/pkg/safeopen"
)

// Record is one run's outcome.
type Record struct {
	Command string `json:"command"` // resolve, release
	// Time is when a run first had this outcome: a run with the same one
	// leaves the record as it is (writing it costs a switch more than the
	// rest of a run with nothing to do).
	Time     time.Time `json:"time"`
	Manifest string    `json:"manifest"`
	Exit     int       `json:"exit"`
	// Conflicts counts the conflicts left after the run.
	Conflicts int      `json:"conflicts"`
	Summary   string   `json:"summary"`
	Lines     []string `json:"lines"` // what it did and said
	// By is "root" for a run root made for the user (root mode).
	By string `json:"by,omitempty"`
}

// MaxSize bounds what Read accepts.
const MaxSize = 256 << 10

// Dir is $XDG_STATE_HOME/portclaim, by default ~/.local/state/portclaim,
// for the user running this process (never used as root).
func Dir(getenv func(string) string) string {
	base := getenv("XDG_STATE_HOME")
	if base == "" || !filepath.IsAbs(base) {
		home := getenv("HOME")
		if home == "" {
			return ""
		}
		base = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(base, "portclaim")
}

// File is the record's name in Dir.
const File = "last-run.json"

// Write stores r in dir atomically (the user's own directory), unless
// the record there already has r's outcome and is newer than since (the
// time of root's record for the user, which status would show instead of
// an older one).
func Write(dir string, r Record, since time.Time) error {
	if dir == "" {
		return fmt.Errorf("no state directory ($HOME is not set)")
	}
	if old, err := safeopen.ReadFile(filepath.Join(dir, File), MaxSize); err == nil {
		if prev, err := Decode(old); err == nil && prev.SameOutcome(r) && prev.Time.After(since) {
			return nil
		}
	}
	return write(dir, File, r, 0o700, 0o600)
}

// RootDir is where root records the runs it made for users (root mode):
// RootDir/<user>.json, root's, readable by root and that user alone (its
// lines may name other users' processes, which root sees and they may
// not).
const RootDir = "/var/lib/portclaim/last-run"

// RootFile is the name of root's record of its runs for user.
func RootFile(user string) string { return user + ".json" }

// WriteRoot stores root's run for user (uid) in dir (RootDir)
// atomically: root's file, 0640 with an ACL entry letting user read it.
// Where the file system keeps no ACLs, the user cannot read it (0600)
// rather than every user can.
func WriteRoot(dir, user string, uid uint32, r Record) error {
	if !policy.ValidUser(user) {
		return fmt.Errorf("%q is not a user name", user)
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	// Traversable, not listable: whom root acted for is not everyone's.
	if err := os.Chmod(dir, 0o711); err != nil {
		return err
	}
	return writeWith(dir, RootFile(user), r, 0o711, 0o600, func(f *os.File) error {
		return grantRead(f, uid)
	})
}

// grantRead lets uid read f besides its owner, by a POSIX access ACL
// (user::rw-, user:uid:r--, group::---, mask::r--, other::---); without
// ACL support it does nothing.
func grantRead(f *os.File, uid uint32) error {
	const undefined = ^uint32(0)
	entries := []struct {
		tag, perm uint16
		id        uint32
	}{{0x01, 6, undefined}, {0x02, 4, uid}, {0x04, 0, undefined}, {0x10, 4, undefined}, {0x20, 0, undefined}}
	buf := binary.LittleEndian.AppendUint32(nil, 2) // POSIX_ACL_XATTR_VERSION
	for _, e := range entries {
		buf = binary.LittleEndian.AppendUint16(buf, e.tag)
		buf = binary.LittleEndian.AppendUint16(buf, e.perm)
		buf = binary.LittleEndian.AppendUint32(buf, e.id)
	}
	err := unix.Fsetxattr(int(f.Fd()), "system.posix_acl_access", buf, 0)
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
		return nil
	}
	return err
}

func write(dir, name string, r Record, dirMode, mode os.FileMode) error {
	return writeWith(dir, name, r, dirMode, mode, nil)
}

// writeWith writes r to dir/name atomically, with mode, and then (when
// given) more done to the file before it takes its name.
func writeWith(dir, name string, r Record, dirMode, mode os.FileMode, more func(*os.File) error) error {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".last-run-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if more != nil {
		if err := more(tmp); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, name))
}

// Newest is the newer of two records (nil: none).
func Newest(a, b *Record) *Record {
	switch {
	case a == nil:
		return b
	case b == nil || !b.Time.After(a.Time):
		return a
	}
	return b
}

// Decode reads a record.
func Decode(data []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("not a last-run record: %w", err)
	}
	// The user writes this file and root may print it: nothing in it may
	// reach a terminal as a control sequence.
	// A line is one line: a message of several (an older record's) is
	// split, not shown with its newlines made '?'.
	r.Command, r.Manifest, r.Summary, r.By = host.Printable(r.Command), host.Printable(r.Manifest), host.Printable(r.Summary), host.Printable(r.By)
	lines := make([]string, 0, len(r.Lines))
	for _, l := range r.Lines {
		for _, one := range strings.Split(l, "\n") {
			lines = append(lines, host.Printable(one))
		}
	}
	r.Lines = lines
	return r, nil
}

// SameOutcome reports whether two runs ended alike, whenever they ran.
func (r Record) SameOutcome(o Record) bool {
	return r.Command == o.Command && r.By == o.By && r.Manifest == o.Manifest && r.Exit == o.Exit && r.Conflicts == o.Conflicts &&
		r.Summary == o.Summary && slices.Equal(r.Lines, o.Lines)
}
