package lastrun

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestWriteAndDecode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "portclaim")
	r := Record{Command: "resolve", Time: time.Unix(5, 0).UTC(), Exit: 0, Conflicts: 1, Summary: "1 conflict left", Lines: []string{"yielded ollama.service"}}
	if err := Write(dir, r, time.Time{}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, File))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(data)
	if err != nil || got.Summary != r.Summary || got.Lines[0] != r.Lines[0] || !got.Time.Equal(r.Time) {
		t.Fatalf("%+v %v", got, err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode %v", fi.Mode().Perm())
	}
}

func TestDir(t *testing.T) {
	env := map[string]string{"XDG_STATE_HOME": "/tmp/xdg-state", "HOME": "/home/alice"}
	if got := Dir(func(k string) string { return env[k] }); got != "/tmp/xdg-state/portclaim" {
		t.Errorf("%q", got)
	}
	env["XDG_STATE_HOME"] = "relative"
	if got := Dir(func(k string) string { return env[k] }); got != "/home/alice/.local/state/portclaim" {
		t.Errorf("%q", got)
	}
}

func TestTheSameOutcomeIsNotWrittenAgain(t *testing.T) {
	dir := t.TempDir()
	first := Record{Command: "resolve", Time: time.Unix(5, 0).UTC(), Summary: "nothing left to do"}
	if err := Write(dir, first, time.Time{}); err != nil {
		t.Fatal(err)
	}
	again := first
	again.Time = time.Unix(99, 0).UTC()
	if err := Write(dir, again, time.Time{}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, File))
	if got, _ := Decode(data); !got.Time.Equal(first.Time) {
		t.Errorf("an unchanged outcome was rewritten: %v", got.Time)
	}
	changed := again
	changed.Conflicts, changed.Summary = 1, "1 conflict left"
	Write(dir, changed, time.Time{})
	data, _ = os.ReadFile(filepath.Join(dir, File))
	if got, _ := Decode(data); got.Summary != "1 conflict left" || !got.Time.Equal(changed.Time) {
		t.Errorf("a new outcome was not written: %+v", got)
	}
}

// TestAnEndlessOldRecordIsReadBounded: the old record is read only as far
// as a record can be long (a link to /dev/zero would otherwise be read
// until memory runs out), and replaced.
func TestAnEndlessOldRecordIsReadBounded(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "portclaim")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(dir, File)); err != nil {
		t.Fatal(err)
	}
	r := Record{Command: "resolve", Time: time.Unix(5, 0).UTC(), Summary: "nothing left to do"}
	if err := Write(dir, r, time.Time{}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, File))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Decode(data); err != nil || !got.SameOutcome(r) {
		t.Errorf("got %+v, %v", got, err)
	}
}

// TestRootsNewerRunIsNotHiddenByAnOlderSameOutcome: alice's record keeps
// its time while her outcome stays the same, but once root has run for
// her since, her next run is written again, so that status (newest wins)
// shows it, not root's.
func TestRootsNewerRunIsNotHiddenByAnOlderSameOutcome(t *testing.T) {
	dir := t.TempDir()
	first := Record{Command: "resolve", Time: time.Unix(5, 0).UTC(), Summary: "nothing left to do"}
	Write(dir, first, time.Time{})
	again := first
	again.Time = time.Unix(99, 0).UTC()
	if err := Write(dir, again, time.Unix(50, 0)); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, File))
	if got, _ := Decode(data); !got.Time.Equal(again.Time) {
		t.Errorf("kept %v under root's newer record", got.Time)
	}
}

func TestRootsRecord(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "last-run")
	r := Record{Command: "resolve", Time: time.Unix(7, 0).UTC(), Summary: "nothing left to do", Lines: []string{"a\n  b"}}
	if err := WriteRoot(dir, "alice", 1000, r); err != nil {
		t.Fatal(err)
	}
	// Not everyone's to read: its lines may name other users' processes.
	// With ACLs, alice reads it by an entry of her own (the mask shows
	// as the group's bits); without, no one but root.
	path := filepath.Join(dir, "alice.json")
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o077&^0o040 != 0 {
		t.Fatalf("%v %v: want no more than 0640", fi, err)
	}
	if dfi, err := os.Stat(dir); err != nil || dfi.Mode().Perm() != 0o711 {
		t.Errorf("the directory: %v %v, want 0711 (whom root acted for is not everyone's)", dfi, err)
	}
	acl := make([]byte, 256)
	n, err := unix.Getxattr(path, "system.posix_acl_access", acl)
	switch {
	case errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENODATA):
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("without ACLs the record is %v, want 0600", fi.Mode().Perm())
		}
	case err != nil:
		t.Fatal(err)
	default:
		// user:1000:r-- is the entry after user::rw-.
		if n != 4+5*8 || binary.LittleEndian.Uint16(acl[12:]) != 2 || binary.LittleEndian.Uint16(acl[14:]) != 4 || binary.LittleEndian.Uint32(acl[16:]) != 1000 {
			t.Errorf("the ACL does not let uid 1000 read alone: % x", acl[:n])
		}
	}
	if err := WriteRoot(dir, "../etc", 1000, r); err == nil {
		t.Error("a name that is not a user's was written")
	}
	data, _ := os.ReadFile(filepath.Join(dir, "alice.json"))
	got, _ := Decode(data)
	if len(got.Lines) != 2 || got.Lines[1] != "  b" {
		t.Errorf("a line of two is not split: %q", got.Lines)
	}
	older := Record{Time: time.Unix(1, 0)}
	if Newest(&older, &got) != &got || Newest(nil, &older) != &older || Newest(&got, nil) != &got {
		t.Error("Newest")
	}
}
