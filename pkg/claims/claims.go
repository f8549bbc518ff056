// Package claims keeps claim files: <claimsDir>/<user>/<unit>. A claim file
// is what keeps a yielded system unit down: the NixOS module gives that
// unit ConditionPathExists=!<claimsDir>/<user>/<unit>, so while the file
// exists systemd skips the unit at boot and on start. The file also
// records what portclaim did, so `release` can undo exactly that.
package claims

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/unitname"
)

// How a claim keeps its unit down.
const (
	// ByCondition: the unit's ConditionPathExists names the claim file.
	ByCondition = "condition"
	// ByTransientMask (root only): /run/systemd/transient/<unit> -> /dev/null,
	// a runtime mask that outranks /etc/systemd/system, where NixOS keeps
	// its units (a `mask --runtime` link in /run/systemd/system does not).
	ByTransientMask = "transient-mask"
)

// Claim is the content of one claim file.
type Claim struct {
	Version   int       `json:"version"`
	User      string    `json:"user"`
	Unit      string    `json:"unit"`
	Service   string    `json:"service"`
	Ports     []Port    `json:"ports"`
	ClaimedAt time.Time `json:"claimedAt"`
	Method    string    `json:"method"`
	Prior     Prior     `json:"prior"`
}

// Port is one claimed port, as in the manifest.
type Port struct {
	Port     uint16 `json:"port"`
	Protocol string `json:"protocol"`
	Address  string `json:"address"` // "" for all addresses
}

// Prior is the unit's state before portclaim touched it.
type Prior struct {
	ActiveState   string `json:"activeState"`
	UnitFileState string `json:"unitFileState"`
}

// WasActive reports whether release should start the unit again.
func (p Prior) WasActive() bool {
	return p.ActiveState == "active" || p.ActiveState == "activating" || p.ActiveState == "reloading"
}

// Dir is the claims directory of one user.
func Dir(claimsDir, user string) string { return filepath.Join(claimsDir, user) }

// Path is the claim file of unit in dir (the unit name is validated first).
func Path(dir, unit string) (string, error) {
	if err := unitname.Validate(unit); err != nil {
		return "", err
	}
	return filepath.Join(dir, unit), nil
}

// Write stores c in dir atomically: a temp file in the same directory,
// fsync, rename over the final name, fsync the directory. A reader (or
// systemd's condition check) sees the old state or the whole new file.
func Write(dir string, c Claim) error {
	path, err := Path(dir, c.Unit)
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".claim-*")
	if err != nil {
		return fmt.Errorf("writing the claim for %s: %w", c.Unit, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename this finds nothing
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("writing the claim for %s: %w", c.Unit, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing the claim for %s: %w", c.Unit, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing the claim for %s: %w", c.Unit, err)
	}
	return syncDir(dir)
}

// Remove deletes the claim file of unit; a missing file is not an error.
func Remove(dir, unit string) error {
	path, err := Path(dir, unit)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the claim for %s: %w", unit, err)
	}
	return syncDir(dir)
}

// List reads every claim in dir, sorted by unit. A missing dir has none.
// Files that are not claims (temp files, the lock) are skipped; a claim
// file that cannot be read is an error naming it.
func List(dir string) ([]Claim, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading claims: %w", err)
	}
	var out []Claim
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || !Claimable(e.Name()) || !e.Type().IsRegular() {
			continue
		}
		data, err := readClaimFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("reading claim %s: %w", e.Name(), err)
		}
		var c Claim
		if err := json.Unmarshal(data, &c); err != nil {
			// An empty or foreign file still keeps the unit down: keep it
			// visible, named after its file.
			c = Claim{Unit: e.Name(), Method: ByCondition}
		}
		c.Unit = e.Name() // the file name is what the condition checks
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Unit < out[j].Unit })
	return out, nil
}

// Claimable reports whether a claim may name unit: a valid service or
// socket unit. A file named after anything else (a target, a template) in
// a claims directory is not portclaim's, and is never acted on.
func Claimable(unit string) bool {
	t := unitname.Type(unit)
	return unitname.Validate(unit) == nil && (t == "service" || t == "socket")
}

// maxClaimSize bounds what is read from a claim file: a user writes these
// files and root may read them.
const maxClaimSize = 64 << 10

// readClaimFile reads a claim without following a symlink and without
// blocking on a FIFO swapped in after the directory was listed.
func readClaimFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxClaimSize {
		return nil, fmt.Errorf("not a claim file (%v, %d bytes)", fi.Mode().Type(), fi.Size())
	}
	return io.ReadAll(io.LimitReader(f, maxClaimSize))
}

// MaskDir is where root keeps the claims it made with a transient mask,
// for user: a root-owned directory (its name cannot be a user's), so that
// no user can forge one and have root unmask a unit.
func MaskDir(claimsDir, user string) string { return filepath.Join(claimsDir, ".masks", user) }

// Lock takes an exclusive lock on dir so two portclaim runs for the same
// user never interleave. It waits up to timeout.
func Lock(dir string, timeout time.Duration) (unlock func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("another portclaim run holds the lock on %s (waited %s)", dir, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// PortsOf converts claimed endpoints for storage.
func PortsOf(eps []endpoint.Endpoint) []Port {
	out := make([]Port, 0, len(eps))
	for _, e := range eps {
		p := Port{Port: e.Port, Protocol: string(e.Proto)}
		if !e.All() {
			p.Address = e.Addr.String()
		}
		out = append(out, p)
	}
	return out
}

// Endpoints converts stored ports back; entries that do not parse (a
// hand-written file) are skipped.
func (c Claim) Endpoints() []endpoint.Endpoint {
	var out []endpoint.Endpoint
	for _, p := range c.Ports {
		e := endpoint.Endpoint{Proto: endpoint.Proto(p.Protocol), Port: p.Port}
		if p.Address != "" {
			a, err := netip.ParseAddr(p.Address)
			if err != nil {
				continue
			}
			e.Addr = a
		}
		if (e.Proto == endpoint.TCP || e.Proto == endpoint.UDP) && e.Port != 0 {
			out = append(out, e)
		}
	}
	return out
}
