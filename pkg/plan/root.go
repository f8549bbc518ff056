package plan

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/portclaim/portclaim/pkg/claim"
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
	Records []claim.Record
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
