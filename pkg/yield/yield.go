// Package yield is portclaim's root side: it makes system units yield to a
// user and brings them back, for the broker (on the policy's word) and for
// root mode (on root's). For each request it reads what systemd and the
// claim files say, asks package plan what to do, and does exactly that:
// claims written before a unit stops, a unit started before its record
// goes, every step in the journal. A failure leaves the system as it was,
// or a record of what was done.
package yield

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/portclaim/portclaim/pkg/actionlog"
	"github.com/portclaim/portclaim/pkg/claim"
	"github.com/portclaim/portclaim/pkg/claimstore"
	"github.com/portclaim/portclaim/pkg/places"
	"github.com/portclaim/portclaim/pkg/plan"
	"github.com/portclaim/portclaim/pkg/policy"
	"github.com/portclaim/portclaim/pkg/protocol"
)

// Service acts for users as root. One Service serves one request at a
// time; the store's lock keeps the broker, reconcile and root mode apart.
type Service struct {
	Store     claimstore.Store
	Authority plan.Authority
	// Policy, when set, reads the policy again once the store is locked:
	// a request that waited for another must act on the policy of now,
	// not the one it arrived under (a switch may have revoked it).
	Policy func() (*policy.Policy, string)
	// Note is root's note of the claims directory served last
	// (policy.ServedNote; "" in tests): while records wait to be moved
	// from there, nothing acts on Store.
	Note string
	// Sys is the system's service manager: *systemd.Manager, or a model
	// of units in the tests.
	Sys    Systemd
	Places places.Places
	Wait   time.Duration // for each job, and for ports to change hands
	Log    *actionlog.Log
	Now    func() time.Time
	// Hooks are the test hooks of this Service; nil: those SetTestHooks
	// installed (none in production).
	Hooks *Hooks
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Yield makes req's units yield to who (uid: whose sockets count as the
// user's own when the ports are checked).
//
// ctx bounds the wait for the store's lock and the reads before the plan:
// when it ends (a deadline, SIGTERM) nothing has been changed. Once the
// plan is made, its changes run on a budget of their own (see work), to
// their end or undone, whatever becomes of ctx.
func (s *Service) Yield(ctx context.Context, who string, uid uint32, req protocol.YieldRequest) (protocol.YieldResult, error) {
	res := protocol.YieldResult{Service: req.Service}
	if err := req.Check(); err != nil {
		return res, err
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return res, err
	}
	defer unlock()
	in, finished, err := s.yieldInput(ctx, who, req, &res)
	if err != nil {
		return res, err
	}
	p := plan.PlanYield(in)
	if p.Refused != nil {
		res.Refused = s.refuse(who, req, p.Refused, finished)
		return res, nil
	}
	res.Warnings = append(res.Warnings, p.Warnings...)
	y := s.newYielding(who, req, in, p, &res)
	// From here on every step changes something: none is cut short by
	// ctx, each is bounded by the work's budget.
	ctx, cancel := s.work(ctx, len(y.planned))
	defer cancel()
	switch y.carryOut(ctx) {
	case undone:
		return res, nil
	case stillStopping:
		return s.portsNow(res, req, uid), nil
	}
	return s.waitFree(ctx, res, req, uid), nil
}

// yieldInput reads what a yield's plan needs, after finishing who's
// unfinished releases of other units first; those of the units planned
// here (the asked ones, the sockets that activate them, their
// dependents) the plan drops, as the user wants them down again. What
// the others came to is said in res's warnings; finished reports whether
// there were any.
func (s *Service) yieldInput(ctx context.Context, who string, req protocol.YieldRequest, res *protocol.YieldResult) (in plan.YieldInput, finished bool, err error) {
	if in, err = s.yieldFacts(ctx, who, req); err != nil {
		return in, false, err
	}
	done, err := s.finishReleases(ctx, who, plannedUnits(in))
	if err != nil {
		return in, false, err
	}
	for _, r := range done.Units {
		res.Warnings = append(res.Warnings, fmt.Sprintf("your earlier release of %s was finished first: %s: %s", r.Unit, r.Outcome, r.Detail))
	}
	if changedAny(done) {
		// Units started (or not): read again what a stop would reach.
		if in, err = s.yieldFacts(ctx, who, req); err != nil {
			return in, true, &PartialError{Err: err, Done: res.Warnings}
		}
	}
	return in, len(done.Units) > 0, nil
}

// refuse records the plan's refusal in the journal and says it, and
// that the user's earlier releases were finished all the same.
func (s *Service) refuse(who string, req protocol.YieldRequest, r *plan.Refusal, finished bool) *protocol.Refusal {
	s.Log.Add(actionlog.Entry{Action: "refuse", Unit: strings.Join(req.Units, ","), User: who, Ports: req.Ports, Result: "refused", Msg: r.Says})
	says := r.Says
	if finished {
		says += "; your earlier releases were finished first (see the warnings)"
	}
	return &protocol.Refusal{Units: r.Units, Says: says, NixOS: r.NixOS, Problems: r.Problems}
}

// yielding is a yield's plan being carried out: the claims written so
// far (what a rollback gives back) and each planned unit's outcome.
type yielding struct {
	s         *Service
	who       string
	req       protocol.YieldRequest
	plan      plan.YieldPlan
	planned   []string
	triggered []plan.Triggered
	res       *protocol.YieldResult
	outcome   map[string]*protocol.UnitResult // the planned units' results, in res.Units
	written   []claim.Claim
}

// ending is how a yield's changes ended, or that they go on.
type ending int

const (
	carryOn       ending = iota // the step is done; the next one follows
	allStopped                  // every planned stop is done
	stillStopping               // a stop job outlasted the wait; the claims stay
	undone                      // a step failed; what the yield did is rolled back
)

// newYielding starts res's outcomes: every planned unit kept down (the
// stops say better), or claimed already.
func (s *Service) newYielding(who string, req protocol.YieldRequest, in plan.YieldInput, p plan.YieldPlan, res *protocol.YieldResult) *yielding {
	y := &yielding{s: s, who: who, req: req, plan: p, planned: plannedUnits(in), triggered: in.Triggered, res: res,
		outcome: map[string]*protocol.UnitResult{}}
	with := map[string]string{}
	for _, d := range in.Dependents {
		with[d.Unit] = d.Of
	}
	res.Units = make([]protocol.UnitResult, 0, len(y.planned))
	for _, u := range y.planned {
		r := protocol.UnitResult{Unit: u, Outcome: protocol.KeptDown, With: with[u]}
		if slices.Contains(p.Already, u) {
			r.Outcome = protocol.Already
		}
		res.Units = append(res.Units, r)
	}
	for i := range res.Units {
		y.outcome[res.Units[i].Unit] = &res.Units[i]
	}
	return y
}

// carryOut writes the claims before anything stops, then masks and
// stops, in the plan's order.
func (y *yielding) carryOut(ctx context.Context) ending {
	if end := y.writeClaims(ctx); end != carryOn {
		return end
	}
	y.s.crash("after-claim")
	if end := y.mask(ctx); end != carryOn {
		return end
	}
	return y.stop(ctx)
}

// fail says why unit's step failed and rolls back what the yield did.
func (y *yielding) fail(ctx context.Context, unit, why string) ending {
	y.outcome[unit].Outcome, y.outcome[unit].Detail = protocol.Failed, why
	y.s.rollback(ctx, y.who, y.written, y.outcome)
	return undone
}

// writeClaims writes the plan's claims, and drops the user's releases
// under way of the units planned.
func (y *yielding) writeClaims(ctx context.Context) ending {
	for _, c := range y.plan.Write {
		if err := y.s.Store.Write(c); err != nil {
			return y.fail(ctx, c.Unit, err.Error())
		}
		y.written = append(y.written, c)
		y.s.Log.Add(actionlog.Entry{Action: "claim", Unit: c.Unit, User: y.who, Ports: c.Ports, Result: "done", Msg: "prior " + c.Prior.ActiveState})
	}
	for _, u := range y.plan.CancelRelease {
		if err := y.s.Store.EndRelease(y.who, u); err != nil {
			y.res.Warnings = append(y.res.Warnings, err.Error())
		}
	}
	return carryOn
}

// mask masks what root keeps down without a condition, then has systemd
// read the masks.
func (y *yielding) mask(ctx context.Context) ending {
	if len(y.plan.Mask) == 0 {
		return carryOn
	}
	for _, u := range y.plan.Mask {
		if err := y.s.mask(u, y.who); err != nil {
			return y.fail(ctx, u, err.Error())
		}
	}
	if err := y.s.Sys.Reload(ctx); err != nil {
		y.res.Warnings = append(y.res.Warnings, fmt.Sprintf("daemon-reload after masking: %v", err))
	}
	return carryOn
}

// stop stops the plan's units in order, each only once what its stop
// takes along is read again and found planned.
func (y *yielding) stop(ctx context.Context) ending {
	for i, u := range y.plan.Stop {
		y.s.pause("before-stop", u)
		// What the stop takes along was read before the claims were
		// written and earlier stops waited for: read it again now, and
		// stop nothing that was not planned.
		if why := y.s.stopsOnlyPlanned(ctx, y.who, u, y.planned, y.triggered); why != "" {
			y.s.Log.Add(actionlog.Entry{Action: "stop", Unit: u, User: y.who, Ports: y.req.Ports, Result: "refused", Msg: why})
			return y.fail(ctx, u, "not stopped: "+why+"; what this yield did is undone, ask again")
		}
		result, err := y.s.Sys.Stop(ctx, u, y.s.Wait)
		y.s.Log.Add(actionlog.Entry{Action: "stop", Unit: u, User: y.who, Ports: y.req.Ports, Result: jobText(result, err)})
		switch {
		case err == nil && result == "done":
			y.outcome[u].Outcome = protocol.Stopped
		case err == nil && result == "":
			y.keepStopping(u, y.plan.Stop[i+1:])
			return stillStopping
		default:
			return y.fail(ctx, u, "stopping it: "+jobText(result, err))
		}
	}
	return allStopped
}

// keepStopping says that unit's stop outlasted the wait, and that the
// stops of rest were not asked for: systemd goes on stopping it, the
// claims keep them down once they are down, so the claims stay.
func (y *yielding) keepStopping(unit string, rest []string) {
	y.outcome[unit].Outcome = protocol.StillStopping
	y.outcome[unit].Detail = fmt.Sprintf("its stop job did not finish within %s (a slow or hanging ExecStop?); systemd goes on stopping it, and the claim keeps it down then; `portclaim release` gives it back", y.s.Wait)
	for _, r := range rest {
		y.outcome[r].Outcome = protocol.StillStopping
		y.outcome[r].Detail = fmt.Sprintf("claimed but not stopped: the stop of %s did not finish first; `portclaim resolve` again stops it, `portclaim release` gives it back", unit)
	}
}

// PartialError is a yield's error after it had changed something: it
// finished the user's earlier releases (Done says how), then failed
// before its own plan. "Nothing was changed" is not to be said of it.
type PartialError struct {
	Err  error
	Done []string
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("%v; before that: %s", e.Err, strings.Join(e.Done, "; "))
}

func (e *PartialError) Unwrap() error { return e.Err }

// NothingChanged reports whether a yield that returned err changed
// nothing: every error but a PartialError comes before any change.
func NothingChanged(err error) bool {
	var p *PartialError
	return !errors.As(err, &p)
}

// changedAny reports whether a release may have changed what runs.
func changedAny(r protocol.ReleaseResult) bool {
	for _, u := range r.Units {
		if u.Outcome != protocol.Kept && u.Outcome != protocol.Deferred {
			return true
		}
	}
	return false
}

// plannedUnits are the units a yield plans for: the asked ones (with the
// sockets that activate them), then their dependents.
func plannedUnits(in plan.YieldInput) []string {
	return append(slices.Clone(in.Asked), plan.DependentUnits(in.Dependents)...)
}

// work is the context of a request's changes: not ended by ctx (a
// deadline for a turn, SIGTERM, a client gone: a change once begun is
// carried through or undone, not left half way), and bounded by a budget
// for units: each one's job and its start settling, the ports' wait, and
// the bus calls around them.
func (s *Service) work(ctx context.Context, units int) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), budget(s.Wait, units))
}

// budget is how long the changes of a request on units may take, with
// wait for each job.
func budget(wait time.Duration, units int) time.Duration {
	return time.Duration(units)*(wait+settle) + portWait + 10*time.Second
}
