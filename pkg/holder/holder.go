// Package holder says which process and unit hold a socket, and how sure
// that is. It works with what the caller may read: an unprivileged user
// sees every socket's uid and every process's uid and cgroup, but only its
// own processes' open files; root sees everything.
package holder

import (
	"fmt"
	"sort"
	"strings"

	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/manifest"
	"github.com/portclaim/portclaim/pkg/unitname"
)

// Confidence says how an attribution was made.
type Confidence string

const (
	// Confirmed: the socket's inode is among the process's open files.
	Confirmed Confidence = "confirmed"
	// Probable: the socket's uid matches the processes of exactly the
	// expected unit (and the caller has checked the unit is active).
	Probable Confidence = "probable"
	// Unknown: what we may read does not single out a holder.
	Unknown Confidence = "unknown"
)

// Holder is who holds a socket.
type Holder struct {
	Unit       host.UnitRef // Name "" with a known holder: outside any unit
	PID        int          // 0 when not known
	Command    string
	UID        uint32 // the socket's owner
	Confidence Confidence
	Why        string // one line a user can check
}

// Known reports whether a holder was found at all.
func (h Holder) Known() bool { return h.Confidence != Unknown }

// FDLookup reports whether process p has the socket inode open;
// an error when its files cannot be read (another user's, or gone).
type FDLookup func(p host.Process, inode uint64) (bool, error)

// Attribute finds the holder of s among ps. expected lists the units that
// should hold it (the manifest's units for this port), most likely first:
// their processes are searched first, so the fds of unrelated processes
// are read only when the expected units do not hold the socket.
func Attribute(s host.Socket, ps []host.Process, expected []host.UnitRef, hasSocket FDLookup) Holder {
	cands := candidates(s, ps, expected)
	if h, ok := confirm(s, cands, hasSocket); ok {
		return h
	}
	return guess(s, cands, expected)
}

// candidates are the processes running as the socket's owner (a socket's
// uid is its creator's, and it passes on fork), expected units' first.
func candidates(s host.Socket, ps []host.Process, expected []host.UnitRef) []host.Process {
	rank := func(u host.UnitRef) int {
		for i, e := range expected {
			if u == e {
				return i
			}
		}
		return len(expected)
	}
	var out []host.Process
	for _, p := range ps {
		if p.UID == s.UID {
			out = append(out, p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		ri, rj := rank(out[i].Unit), rank(out[j].Unit)
		if ri != rj {
			return ri < rj
		}
		return out[i].PID < out[j].PID
	})
	return out
}

func confirm(s host.Socket, cands []host.Process, hasSocket FDLookup) (Holder, bool) {
	for _, p := range cands {
		// Errors (no permission: root's processes seen by a user, or a
		// user's non-dumpable ones; or the process exited) only mean this
		// process cannot confirm it.
		if ok, _ := hasSocket(p, s.Inode); ok {
			return Holder{Unit: p.Unit, PID: p.PID, Command: p.Command, UID: s.UID, Confidence: Confirmed,
				Why: fmt.Sprintf("socket inode %d is open in pid %d", s.Inode, p.PID)}, true
		}
	}
	return Holder{}, false
}

func guess(s host.Socket, cands []host.Process, expected []host.UnitRef) Holder {
	first := map[host.UnitRef]host.Process{} // lowest pid per unit: usually its main process
	var units []host.UnitRef
	for _, p := range cands {
		if p.Unit.Name == unitname.ManagerScope {
			// The manager itself (pid 1, or systemd --user and its
			// sd-pam) runs as every uid that has a user manager; it holds
			// sockets only for .socket units, which the fds confirm.
			continue
		}
		if _, seen := first[p.Unit]; !seen {
			first[p.Unit] = p
			units = append(units, p.Unit)
		}
	}
	pick := func(u host.UnitRef, why string) Holder {
		p := first[u]
		return Holder{Unit: u, PID: p.PID, Command: p.Command, UID: s.UID, Confidence: Probable, Why: why}
	}
	for _, e := range expected {
		if _, ok := first[e]; ok {
			return pick(e, fmt.Sprintf("socket owned by uid %d, as are the processes of %s", s.UID, describe(e)))
		}
	}
	if len(units) == 1 {
		return pick(units[0], fmt.Sprintf("socket owned by uid %d, whose only processes are in %s", s.UID, describe(units[0])))
	}
	why := fmt.Sprintf("socket owned by uid %d, which runs processes in %d units; run as root to see which holds it", s.UID, len(units))
	if len(units) == 0 {
		why = fmt.Sprintf("socket owned by uid %d, which runs no process we can see", s.UID)
	}
	return Holder{UID: s.UID, Confidence: Unknown, Why: why}
}

func describe(u host.UnitRef) string {
	switch {
	case u.Name == "":
		return "no unit"
	case u.User:
		return fmt.Sprintf("%s (user %d)", u.Name, u.UserUID)
	}
	return u.Name
}

// Expected lists the units the manifest says may hold s: the claiming
// services' system units, then their user units (of uid), most likely
// first. Their processes are looked at first, and unprivileged they make
// a root-owned socket's holder probable rather than unknown.
func Expected(m manifest.Manifest, s host.Socket, uid uint32) []host.UnitRef {
	var out []host.UnitRef
	for _, svc := range m.Services {
		for _, p := range svc.Ports {
			if !endpoint.Overlap(p, s.Endpoint) {
				continue
			}
			for _, u := range svc.SystemUnits {
				out = append(out, host.UnitRef{Name: u})
			}
			for _, u := range svc.UserUnits {
				out = append(out, host.UnitRef{User: true, UserUID: uid, Name: u})
			}
			break
		}
	}
	return out
}

// Describe names the holder for a message: "system ollama.service (pid
// 70 ollama)", "user alice's podman-x.service (pid 90 conmon)", "pid 12
// nc outside any unit"; a unit without a known process, "system
// ollama.socket". nameOf turns a uid into a user name.
func (h Holder) Describe(nameOf func(uint32) string) string {
	proc := ""
	if h.PID > 0 {
		proc = fmt.Sprintf("pid %d %s", h.PID, h.Command)
	}
	var unit string
	switch {
	case !h.Known():
		return fmt.Sprintf("a process of uid %d", h.UID)
	case h.Unit.Name == "":
		return strings.TrimSpace(proc + " outside any unit")
	case h.Unit.User:
		unit = fmt.Sprintf("user %s's %s", nameOf(h.Unit.UserUID), h.Unit.Name)
	default:
		unit = "system " + h.Unit.Name
	}
	if proc == "" {
		return unit // known by its unit alone: the cgroup, or a .socket unit's listener
	}
	return fmt.Sprintf("%s (%s)", unit, proc)
}
