package plan

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/portclaim/portclaim/pkg/claim"
	"github.com/portclaim/portclaim/pkg/claimstore"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/policy"
	"github.com/portclaim/portclaim/pkg/unitname"
)

// The root side's decisions: what the broker (or root mode) claims, stops
// and starts for one user's request, in which order, and what it refuses.

// UnitFacts is what the root side read about one unit.
type UnitFacts struct {
	Unit       host.Unit
	Conditions []host.Condition
	// Records are every user's records on the unit (claims and releases
	// under way).
	Records []claimstore.Entry
}

// Dependent is an active unit systemd would stop along with an asked one.
type Dependent struct {
	Unit string
	Of   string // the asked unit whose stop reaches it
	Via  string // the unit it depends on directly
}

// Triggered is a unit the stop of another starts: its OnSuccess= (it
// goes inactive) or OnFailure= (an ExecStop= that fails leaves it
// failed).
type Triggered struct {
	Unit string
	By   string // the unit whose stop starts it
	Via  string // OnSuccess or OnFailure
}

// Authority is on whose word the root side acts: the policy for a user
// who asked the broker, or root itself (root mode), who may make any unit
// yield and keeps down with a transient mask what has no condition.
type Authority struct {
	Policy *policy.Policy // nil for root
	Root   bool
}

// YieldInput is one request to yield.
type YieldInput struct {
	User       string
	Authority  Authority
	Service    string
	Asked      []string // a service and its socket
	Ports      []endpoint.Endpoint
	Dependents []Dependent
	Facts      map[string]UnitFacts // the asked units and the dependents
	// Queued are units the stop reaches that have a job queued: a stop
	// with job mode "replace" would cancel root's job.
	Queued []string
	// Triggered are the units not running that the stops would start;
	// TriggerProblems what those starts would do that nothing records
	// ("stop x.service (Conflicts=), which ..."): either refuses.
	Triggered       []Triggered
	TriggerProblems []string
	// ClaimPath is where user's claim on a unit lives (the path its
	// condition names).
	ClaimPath func(user, unit string) string
	Now       time.Time
}

// Refusal says why nothing was done, and how to change that.
type Refusal struct {
	// Units the policy does not let yield to the user, and the line that
	// would.
	Units    []string
	Says     string
	NixOS    string
	Problems []string // records that cannot be read
}

// YieldPlan is what the root side does for one request.
type YieldPlan struct {
	Refused *Refusal
	// Write are the claims to write, asked units first (socket first),
	// then dependents.
	Write []claim.Claim
	// Already lists the units this user has claimed before: a run after a
	// crash converges instead of claiming again.
	Already []string
	// CancelRelease lists this user's releases under way on these units:
	// the user wants them down again, so the release is dropped.
	CancelRelease []string
	// Mask lists the units root keeps down with a transient mask.
	Mask []string
	// Stop lists the active units to stop, dependents (deepest first)
	// before the units they depend on, a socket before its service.
	Stop []string
	// Warnings are said, not acted on (nothing keeps a unit down at boot).
	Warnings []string
}

// PlanYield decides a yield. A user may make a unit yield only when the
// policy lets it, and every active unit systemd would stop with it too: a
// stop never takes down more than the policy names.
func PlanYield(in YieldInput) YieldPlan {
	var p YieldPlan
	all := append(slices.Clone(in.Asked), DependentUnits(in.Dependents)...)
	// A claim names a service or a socket; a stop that would take along
	// anything else (a .mount, a .target, a .timer that Requires= it)
	// would leave that down without a record.
	var unclaimable []string
	for _, d := range in.Dependents {
		if !unitname.Claimable(d.Unit) {
			unclaimable = append(unclaimable, fmt.Sprintf("%s (it depends on %s)", d.Unit, d.Via))
		}
	}
	if len(unclaimable) > 0 {
		p.Refused = &Refusal{Says: fmt.Sprintf("stopping %s would also stop %s; portclaim claims only .service and .socket units, so it cannot keep that down and bring it back; nothing was changed",
			strings.Join(in.Asked, " and "), strings.Join(unclaimable, ", "))}
		return p
	}
	if !in.Authority.Root {
		var missing []string
		for _, u := range append(slices.Clone(all), TriggeredUnits(in.Triggered)...) {
			if (in.Authority.Policy == nil || !in.Authority.Policy.Allows(in.User, u)) && !slices.Contains(missing, u) {
				missing = append(missing, u)
			}
		}
		if len(missing) > 0 {
			p.Refused = &Refusal{Units: missing, NixOS: in.Authority.Policy.YieldLine(in.User, missing...),
				Says: refusalText(in, missing)}
			return p
		}
	}
	if len(in.TriggerProblems) > 0 {
		p.Refused = &Refusal{Says: fmt.Sprintf("stopping %s would %s: nothing would record that, and no release would undo it; nothing was changed",
			strings.Join(in.Asked, " and "), strings.Join(in.TriggerProblems, "; "))}
		return p
	}
	if len(in.Queued) > 0 {
		p.Refused = &Refusal{Says: fmt.Sprintf("systemd has jobs queued for %s (a boot or a switch under way?), which a stop now would cancel; nothing was changed: try again when they are done",
			strings.Join(in.Queued, ", "))}
		return p
	}
	var broken []string
	for _, u := range all {
		for _, r := range in.Facts[u].Records {
			if r.Problem != "" {
				broken = append(broken, r.Problem)
			}
		}
	}
	if len(broken) > 0 {
		p.Refused = &Refusal{Problems: broken, Says: "a claim record on these units cannot be read, so portclaim changes nothing about them until root repairs or removes it: " + strings.Join(broken, "; ")}
		return p
	}
	with := map[string]string{}
	for _, d := range in.Dependents {
		with[d.Unit] = d.Of
	}
	for _, u := range all {
		facts := in.Facts[u]
		how := method(in, u, facts)
		mine := false
		var releasing, askedBack *claim.Claim
		for i, r := range facts.Records {
			if r.User == in.User {
				mine = mine || !r.Releasing
				switch {
				case r.Releasing:
					releasing = &facts.Records[i].Claim
				case r.Problem == "" && r.Claim.GiveBack != nil:
					askedBack = &facts.Records[i].Claim
				}
			}
		}
		if askedBack != nil {
			// Asked for back, and now wanted down again: the give-back
			// is dropped.
			c := *askedBack
			c.GiveBack = nil
			p.Write = append(p.Write, c)
		}
		if releasing != nil {
			p.CancelRelease = append(p.CancelRelease, u)
		}
		switch {
		case mine:
			p.Already = append(p.Already, u)
		case releasing != nil:
			// The user wants it down again before its release finished:
			// the record goes back as it was, with the state it had
			// before the first claim (not the failed state it may be in
			// now).
			c := *releasing
			c.Release = nil
			p.Write = append(p.Write, c)
			p.Already = append(p.Already, u)
		default:
			c := claim.Claim{Version: claim.Version, User: in.User, Unit: u, Service: in.Service, Ports: in.Ports,
				ClaimedAt: in.Now.UTC(), With: with[u], Prior: priorOf(in.User, facts), Method: how}
			if c.Method == claim.ByNothing {
				p.Warnings = append(p.Warnings, fmt.Sprintf("%s has no ConditionPathExists=!%s, so it starts again at boot; the NixOS module adds it to every unit services.portclaim.yield lists",
					u, in.ClaimPath(in.User, u)))
			}
			p.Write = append(p.Write, c)
		}
		if how == claim.ByTransientMask {
			p.Mask = append(p.Mask, u)
		}
	}
	// Dependents deepest first, then the asked units socket first: each
	// stop then finds nothing left that systemd would stop along.
	for i := len(in.Dependents) - 1; i >= 0; i-- {
		if in.Facts[in.Dependents[i].Unit].Unit.Active() {
			p.Stop = append(p.Stop, in.Dependents[i].Unit)
		}
	}
	for _, u := range socketFirst(in.Asked) {
		if in.Facts[u].Unit.Active() {
			p.Stop = append(p.Stop, u)
		}
	}
	return p
}

func refusalText(in YieldInput, missing []string) string {
	var deps []string
	for _, d := range in.Dependents {
		if slices.Contains(missing, d.Unit) {
			deps = append(deps, fmt.Sprintf("%s (it depends on %s)", d.Unit, d.Via))
		}
	}
	asked := slices.DeleteFunc(slices.Clone(missing), func(u string) bool { return !slices.Contains(in.Asked, u) })
	var parts []string
	if len(asked) > 0 {
		parts = append(parts, fmt.Sprintf("the system policy does not let %s yield to %s", strings.Join(asked, " and "), in.User))
	}
	if len(deps) > 0 {
		parts = append(parts, fmt.Sprintf("stopping %s would also stop %s, which the policy does not let yield to %s",
			strings.Join(in.Asked, " and "), strings.Join(deps, ", "), in.User))
	}
	var started []string
	for _, t := range in.Triggered {
		if slices.Contains(missing, t.Unit) {
			started = append(started, fmt.Sprintf("%s (%s= of %s)", t.Unit, t.Via, t.By))
		}
	}
	if len(started) > 0 {
		parts = append(parts, fmt.Sprintf("stopping %s would start %s, which the policy does not let yield to %s",
			strings.Join(in.Asked, " and "), strings.Join(started, ", "), in.User))
	}
	return strings.Join(parts, "; ") + "; nothing was changed"
}

// TriggeredUnits names the units of ts, in order.
func TriggeredUnits(ts []Triggered) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Unit
	}
	return out
}

// DependentUnits names the units of ds, in order.
func DependentUnits(ds []Dependent) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Unit
	}
	return out
}

// priorOf is the state a new claim records: the one the first claim on
// the unit recorded, when another user's record is there (the unit is down
// because of that claim, or its release is not done: it is not down by
// itself), else its state now.
func priorOf(user string, facts UnitFacts) claim.Prior {
	var first *claim.Claim
	for i, r := range facts.Records {
		if r.User != user && r.Problem == "" && (first == nil || r.Claim.ClaimedAt.Before(first.ClaimedAt)) {
			first = &facts.Records[i].Claim
		}
	}
	if first != nil {
		return first.Prior
	}
	return claim.Prior{ActiveState: facts.Unit.ActiveState, UnitFileState: facts.Unit.UnitFileState}
}

// method is how the unit will be kept down for user: its condition,
// which the NixOS module rendered; for root, where there is none, a
// transient mask.
func method(in YieldInput, unit string, facts UnitFacts) string {
	if host.KeptDownBy(facts.Conditions, in.ClaimPath(in.User, unit)) {
		return claim.ByCondition
	}
	if in.Authority.Root {
		return claim.ByTransientMask
	}
	return claim.ByNothing
}

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
	Entry  claimstore.Entry
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
	Entries []claimstore.Entry
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
		case !inRelease && in.Facts[c.With].Unit.Active():
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

func releaseStep(in ReleaseInput, e claimstore.Entry) ReleaseStep {
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
func Stale(e claimstore.Entry, pol *policy.Policy, userExists bool) string {
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
