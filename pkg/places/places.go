// Package places says where portclaim reads a machine (the /proc and /sys
// it reads, the policy, the broker's socket, the claims directory and
// its note), and reads what both sides need of them at once: the policy,
// if root alone can have written it, and where the claims are. The user
// side (check, status) and the root side (the broker, root mode,
// reconcile) share it; tests point it elsewhere.
package places

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/portclaim/portclaim/pkg/claimstore"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/lastrun"
	"github.com/portclaim/portclaim/pkg/policy"
	"github.com/portclaim/portclaim/pkg/safeopen"
	"github.com/portclaim/portclaim/pkg/sockets"
)

// Places are where portclaim reads a machine; tests point them elsewhere.
type Places struct {
	ProcRoot     string // /proc
	SysRoot      string // /sys
	PolicyPath   string // /etc/portclaim/policy.json
	BrokerSocket string // policy.BrokerSocket
	TransientDir string // /run/systemd/transient
	ServedNote   string // policy.ServedNote
	// Booted is there while systemd runs as PID 1 (sd_booted(3)); a user
	// has lingering on when LingerDir/<user> exists.
	Booted    string // /run/systemd/system
	LingerDir string // /var/lib/systemd/linger
	// RootRuns is where root records the runs it makes for users.
	RootRuns string // lastrun.RootDir
}

// Masked reports whether root mode's transient mask of unit is in place:
// TransientDir/unit links to /dev/null. (The link portclaim makes, and
// the only one it removes.)
func (p Places) Masked(unit string) bool {
	t, err := os.Readlink(filepath.Join(p.TransientDir, unit))
	return err == nil && t == "/dev/null"
}

// Default are the places on a running system.
var Default = Places{ProcRoot: "/proc", SysRoot: "/sys", PolicyPath: policy.Path,
	BrokerSocket: policy.BrokerSocket, TransientDir: "/run/systemd/transient",
	Booted: "/run/systemd/system", LingerDir: "/var/lib/systemd/linger", RootRuns: lastrun.RootDir,
	ServedNote: policy.ServedNote}

// Broker says whether portclaim's broker socket listens, is there but
// stopped, or is missing.
func (p Places) Broker() host.Broker {
	if !IsSocket(p.BrokerSocket) {
		return host.BrokerMissing
	}
	if ok, err := sockets.UnixListening(p.ProcRoot, p.BrokerSocket); err == nil && !ok {
		return host.BrokerStopped
	}
	return host.BrokerListening // or not known: resolve will find out
}

// SystemdRuns reports whether systemd runs this machine.
func (p Places) SystemdRuns() bool {
	fi, err := os.Stat(p.Booted)
	return err == nil && fi.IsDir()
}

// Lingers reports whether user has lingering on: their user manager
// starts at boot.
func (p Places) Lingers(user string) bool {
	_, err := os.Stat(filepath.Join(p.LingerDir, user))
	return err == nil
}

// LoadPolicy reads the policy if root alone can have written it; else
// it returns why not.
func LoadPolicy(path string) (*policy.Policy, string) {
	pol, problem, _ := ReadPolicy(path)
	return pol, problem
}

// ReadPolicy is LoadPolicy that also says whether the policy is missing:
// no file at path (the NixOS module is off). A policy that is there but
// cannot be believed (not root's, not whole JSON, a version this binary
// does not read: a newer module beside an older binary) is not a policy
// that allows nothing: the claims made under it stand.
func ReadPolicy(path string) (pol *policy.Policy, problem string, missing bool) {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Sprintf("no portclaim policy is installed (%s does not exist)", path), true
	}
	data, err := safeopen.RootFile(path, policy.MaxSize)
	if err != nil {
		return nil, fmt.Sprintf("the policy cannot be used: %v", err), false
	}
	p, err := policy.Parse(path, data)
	if err != nil {
		return nil, err.Error(), false
	}
	return &p, "", false
}

// ClaimsDir is where the claims are now: the policy's directory, but
// while records wait to be moved there from the directory served last
// (claimstore.Moving), that one; without a trusted policy, the one
// served last. note is the note of that directory (Places.ServedNote).
func ClaimsDir(pol *policy.Policy, note string) string {
	if pol == nil {
		if dir, err := claimstore.Served(note); err == nil {
			return dir
		}
		return policy.DefaultClaimsDir
	}
	if from, err := claimstore.Moving(note, pol.ClaimsDir); err == nil && from != "" {
		return from
	}
	return pol.ClaimsDir
}

// IsSocket reports whether a socket is at path (the broker's, a user
// manager's bus).
func IsSocket(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode()&fs.ModeSocket != 0
}
