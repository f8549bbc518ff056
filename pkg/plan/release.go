// The root side's release: in which order units come back, which wait,
// and which records go without a start.
package plan

import (
	"fmt"
	"sort"
	"strings"

	"github.com/portclaim/portclaim/pkg/claim"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/policy"
)

// ReleaseAction is what the root side does with one record.
type ReleaseAction string

const (
	// Remove the claim only: another claim keeps the unit down, or it was
	// not running before, or it runs anyway.
	RemoveOnly ReleaseAction = "remove"
	// Start the unit again after moving its record aside; remove the
	// record once the unit runs.
	Restart ReleaseAction = "start"
	// Defer: the claim stays, for a later run.
	Defer ReleaseAction = "defer"
	// Keep: a record that cannot be read stays, untouched.
	Keep ReleaseAction = "keep"
)

// ReleaseStep gives one claimed unit back.
type ReleaseStep struct {
	Entry  claim.Record
	Action ReleaseAction
	Unmask bool   // a transient mask to remove first
	Why    string // for people
	// Each, for a Restart that must leave out what its start would pull
	// in (Without): exactly these units are started (the unit among
	// them), each with job mode ignore-requirements, in this order.
	// Empty: the unit is started with job mode replace, and systemd
	// pulls in the rest.
	Each, Without []string
	// Held is the user's own socket a Defer waits for, and Holder how Why
	// names its holder (the client, which can read its own processes'
	// files, may name it better).
	Held   *host.Socket
	Holder string
	// InTheWay, for a Restart of a record the policy no longer allows
	// (Stale), is the user's own socket on a claimed port, said when the
	// start fails: reconcile gives the unit back all the same (a switch
	// would start it anyway, the policy no longer rendering its
	// condition), and a failed switch must name who holds the port.
	InTheWay string
}

// StartReach is what a start of a released unit would reach, as read.
type StartReach struct {
	// Along are the units to start: the unit, and those not running that
	// it pulls in and that the policy lets come back along (a family:
	// ollama and its model loader), in the order their After= asks.
	Along []string
	// Skipped are not running, pulled in through Wants= alone, and not
	// in the policy: a start with job mode ignore-requirements leaves
	// them out. Needed are the same through Requires=, BindsTo= or
	// Upholds= ("x (Requires= of y)"): without them the unit may not
	// work, so the release waits.
	Skipped, Needed []string
}

// ReleaseInput is a request to give claims back.
type ReleaseInput struct {
	User string
	// Entries are the user's records to release (claims and releases
	// under way), dependents included.
	Entries []claim.Record
	Facts   map[string]UnitFacts
	// Sockets are those on the claimed ports now; UID is the user's: a
	// release waits only while the user's own sockets hold a claimed
	// port (sd-switch has not stopped that user unit yet). Anything else
	// on it is no reason to keep a unit down: its start may fail, and its
	// record then says so.
	Sockets []host.Socket
	UID     uint32
	// HolderOf names who holds a socket, for a deferral's message.
	HolderOf func(host.Socket) string
	// Conflicting lists, by unit, the active units a start of it would
	// stop (Conflicts= of it, or of a unit its start pulls in): such a
	// start waits rather than take them down. Queued lists, by unit, the
	// units its start reaches that have a job queued, which a start with
	// job mode "replace" would cancel.
	Conflicting map[string][]string
	Queued      map[string][]string
	// Reach is, by unit, what its start would pull in (StartReach).
	Reach map[string]StartReach
	// Stale: the records are given back because their user or the policy
	// no longer allows them (reconcile): the user's sockets are no reason
	// to wait either.
	Stale bool
}

// PlanRelease decides a release, in the order systemd needs: the units a
// claim was asked for before the dependents stopped with them, a socket
// before its service.
func PlanRelease(in ReleaseInput) []ReleaseStep {
	var steps []ReleaseStep
	for _, e := range in.Entries {
		steps = append(steps, releaseStep(in, e))
	}
	sort.SliceStable(steps, func(i, j int) bool {
		a, b := steps[i].Entry.Claim, steps[j].Entry.Claim
		if (a.With == "") != (b.With == "") {
			return a.With == ""
		}
		return orderKey(a.Unit) < orderKey(b.Unit)
	})
	// A unit stopped with another needs that one running to start: it
	// waits while that one stays down (a deferred release, another
	// user's claim), keeping its record.
	action := map[string]ReleaseStep{}
	for i, st := range steps {
		c := st.Entry.Claim
		action[c.Unit] = st
		if c.With == "" || st.Action != Restart {
			continue
		}
		w, inRelease := action[c.With]
		switch {
		case inRelease && w.Action == Restart:
		case in.Facts[c.With].Unit.Active():
			// It runs (a yield rolled back after its stop was canceled,
			// or root started it): its record only goes, this one starts.
		default:
			why := "it is down"
			if inRelease {
				why = w.Why
			}
			steps[i].Action, steps[i].Why = Defer, fmt.Sprintf("it needs %s, which stays down (%s); released on a later run", c.With, why)
			action[c.Unit] = steps[i]
		}
	}
	return steps
}

func releaseStep(in ReleaseInput, e claim.Record) ReleaseStep {
	st := ReleaseStep{Entry: e}
	if e.Problem != "" {
		st.Action, st.Why = Keep, "the record cannot be read, so nothing about the unit is changed until root repairs or removes it: "+e.Problem
		return st
	}
	c := e.Claim
	st.Unmask = c.Method == claim.ByTransientMask
	facts := in.Facts[c.Unit]
	var others []string
	for _, r := range facts.Records {
		if r.User != in.User && !r.Releasing {
			others = append(others, r.User)
		}
	}
	// Another user's release under way carries the same prior state:
	// that one brings the unit back.
	switch {
	case len(others) > 0:
		st.Action = RemoveOnly
		st.Why = fmt.Sprintf("it stays down: %s's claim keeps it", strings.Join(others, " and "))
		// Root's mask goes with the last record that made it; the others'
		// conditions keep the unit down.
		for _, r := range facts.Records {
			if r.User != in.User && !r.Releasing && r.Claim.Method == claim.ByTransientMask {
				st.Unmask = false
			}
		}
	case facts.Unit.Active():
		st.Action, st.Why = RemoveOnly, "it is running (nothing kept it down)"
	case !c.Prior.WasActive():
		st.Action, st.Why = RemoveOnly, fmt.Sprintf("it was %s before the first claim, so it stays stopped", c.Prior.ActiveState)
	default:
		held, sock, who := heldPorts(in, c.Ports)
		if held != "" && !in.Stale {
			st.Action, st.Why = Defer, held+"; the claim keeps it down until the port is free, then the next `portclaim release` gives it back (as do home-manager's next switch and reconcile at boot)"
			st.Held, st.Holder = sock, who
			return st
		}
		st.InTheWay = held
		if stops := in.Conflicting[c.Unit]; len(stops) > 0 {
			st.Action, st.Why = Defer, fmt.Sprintf("starting it would stop %s (Conflicts=); the claim stays until they are down, or root starts it", strings.Join(stops, ", "))
			return st
		}
		if queued := in.Queued[c.Unit]; len(queued) > 0 {
			st.Action, st.Why = Defer, fmt.Sprintf("systemd has jobs queued for %s, which its start would cancel; released on a later run", strings.Join(queued, ", "))
			return st
		}
		reach := in.Reach[c.Unit]
		if len(reach.Needed) > 0 {
			st.Action, st.Why = Defer, fmt.Sprintf("starting it would also start %s, which is down and which the policy does not let yield to %s; started without it, it may not work: the claim stays until it runs (root starts it) or the policy names it",
				strings.Join(reach.Needed, ", "), in.User)
			return st
		}
		st.Action, st.Why = Restart, "it ran before the first claim"
		if len(reach.Skipped) > 0 {
			st.Each, st.Without = reach.Along, reach.Skipped
		}
	}
	return st
}

// heldPorts says which of the user's own sockets holds any of ports now
// (and names the socket and its holder), or "".
func heldPorts(in ReleaseInput, ports []endpoint.Endpoint) (string, *host.Socket, string) {
	for _, want := range ports {
		for i, s := range in.Sockets {
			if endpoint.Overlap(want, s.Endpoint) && s.UID == in.UID {
				who := fmt.Sprintf("uid %d", s.UID)
				if in.HolderOf != nil {
					who = in.HolderOf(s)
				}
				return fmt.Sprintf("%s is still held at %s by %s", want.PortProto(), s.Endpoint, who), &in.Sockets[i], who
			}
		}
	}
	return "", nil, ""
}

// Stale says why a record should be given back without its user asking:
// its user no longer exists, or the policy no longer lets its unit yield
// to that user (and so no longer renders the condition that kept it
// down). "" for a record that stands. Root's transient masks stand until
// their user is gone: root made them, not the policy.
func Stale(e claim.Record, pol *policy.Policy, userExists bool) string {
	switch {
	case !userExists:
		return fmt.Sprintf("user %s no longer exists", e.User)
	case e.Problem != "":
		return ""
	case e.Claim.Method == claim.ByTransientMask:
		return ""
	case pol == nil:
		return "no policy is installed any more"
	case !pol.Allows(e.User, e.Unit):
		return fmt.Sprintf("the policy no longer lets %s yield to %s", e.Unit, e.User)
	}
	return ""
}
