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
	"github.com/portclaim/portclaim/pkg/gather"
	"github.com/portclaim/portclaim/pkg/plan"
	"github.com/portclaim/portclaim/pkg/policy"
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
	Places gather.Places
	Wait   time.Duration // for each job, and for ports to change hands
	Log    *actionlog.Log
	Now    func() time.Time
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
func (s *Service) Yield(ctx context.Context, who string, uid uint32, req YieldRequest) (YieldResult, error) {
	res := YieldResult{Service: req.Service}
	if err := req.Check(); err != nil {
		return res, err
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return res, err
	}
	defer unlock()
	in, err := s.yieldFacts(ctx, who, req)
	if err != nil {
		return res, err
	}
	// A user's unfinished releases of other units are finished first;
	// those of the units planned here (the asked ones, the sockets that
	// activate them, their dependents) are dropped below, as the user
	// wants them down again. What the others came to is said.
	finished, err := s.finishReleases(ctx, who, plannedUnits(in))
	if err != nil {
		return res, err
	}
	for _, r := range finished.Units {
		res.Warnings = append(res.Warnings, fmt.Sprintf("your earlier release of %s was finished first: %s: %s", r.Unit, r.Outcome, r.Detail))
	}
	if changedAny(finished) {
		// Units started (or not): read again what a stop would reach.
		if in, err = s.yieldFacts(ctx, who, req); err != nil {
			return res, &PartialError{Err: err, Done: res.Warnings}
		}
	}
	p := plan.PlanYield(in)
	if p.Refused != nil {
		says := p.Refused.Says
		if len(finished.Units) > 0 {
			says += "; your earlier releases were finished first (see the warnings)"
		}
		res.Refused = &Refusal{Units: p.Refused.Units, Says: says, NixOS: p.Refused.NixOS, Problems: p.Refused.Problems}
		s.Log.Add(actionlog.Entry{Action: "refuse", Unit: strings.Join(req.Units, ","), User: who, Ports: req.Ports, Result: "refused", Msg: p.Refused.Says})
		return res, nil
	}
	res.Warnings = append(res.Warnings, p.Warnings...)
	planned := plannedUnits(in)
	with := map[string]string{}
	for _, d := range in.Dependents {
		with[d.Unit] = d.Of
	}
	res.Units = make([]UnitResult, 0, len(planned))
	for _, u := range planned {
		r := UnitResult{Unit: u, Outcome: KeptDown, With: with[u]}
		if slices.Contains(p.Already, u) {
			r.Outcome = Already
		}
		res.Units = append(res.Units, r)
	}
	outcome := map[string]*UnitResult{}
	for i := range res.Units {
		outcome[res.Units[i].Unit] = &res.Units[i]
	}

	// From here on every step changes something: none is cut short by
	// ctx, each is bounded by the work's budget.
	ctx, cancel := s.work(ctx, len(planned))
	defer cancel()
	var written []claim.Claim
	for _, c := range p.Write {
		if err := s.Store.Write(c); err != nil {
			outcome[c.Unit].Outcome, outcome[c.Unit].Detail = Failed, err.Error()
			s.rollback(ctx, who, written, outcome)
			return res, nil
		}
		written = append(written, c)
		s.Log.Add(actionlog.Entry{Action: "claim", Unit: c.Unit, User: who, Ports: c.Ports, Result: "done", Msg: "prior " + c.Prior.ActiveState})
	}
	for _, u := range p.CancelRelease {
		if err := s.Store.EndRelease(who, u); err != nil {
			res.Warnings = append(res.Warnings, err.Error())
		}
	}
	crashPoint("after-claim")
	if len(p.Mask) > 0 {
		for _, u := range p.Mask {
			if err := s.mask(u, who); err != nil {
				outcome[u].Outcome, outcome[u].Detail = Failed, err.Error()
				s.rollback(ctx, who, written, outcome)
				return res, nil
			}
		}
		if err := s.Sys.Reload(ctx); err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("daemon-reload after masking: %v", err))
		}
	}
	for i, u := range p.Stop {
		testPause("before-stop", u)
		// What the stop takes along was read before the claims were
		// written and earlier stops waited for: read it again now, and
		// stop nothing that was not planned.
		if why := s.stopsOnlyPlanned(ctx, who, u, planned, in.Triggered); why != "" {
			outcome[u].Outcome, outcome[u].Detail = Failed, "not stopped: "+why+"; what this yield did is undone, ask again"
			s.Log.Add(actionlog.Entry{Action: "stop", Unit: u, User: who, Ports: req.Ports, Result: "refused", Msg: why})
			s.rollback(ctx, who, written, outcome)
			return res, nil
		}
		result, err := s.Sys.Stop(ctx, u, s.Wait)
		s.Log.Add(actionlog.Entry{Action: "stop", Unit: u, User: who, Ports: req.Ports, Result: jobText(result, err)})
		switch {
		case err == nil && result == "done":
			outcome[u].Outcome = Stopped
		case err == nil && result == "":
			// systemd goes on stopping it; the claim keeps it down once
			// it is down, so the claim stays, and says so.
			outcome[u].Outcome = StillStopping
			outcome[u].Detail = fmt.Sprintf("its stop job did not finish within %s (a slow or hanging ExecStop?); systemd goes on stopping it, and the claim keeps it down then; `portclaim release` gives it back", s.Wait)
			for _, rest := range p.Stop[i+1:] {
				outcome[rest].Outcome = StillStopping
				outcome[rest].Detail = fmt.Sprintf("claimed but not stopped: the stop of %s did not finish first; `portclaim resolve` again stops it, `portclaim release` gives it back", u)
			}
			return s.portsNow(res, req, uid), nil
		default:
			outcome[u].Outcome, outcome[u].Detail = Failed, "stopping it: "+jobText(result, err)
			s.rollback(ctx, who, written, outcome)
			return res, nil
		}
	}
	return s.waitFree(ctx, res, req, uid), nil
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
func changedAny(r ReleaseResult) bool {
	for _, u := range r.Units {
		if u.Outcome != Kept && u.Outcome != Deferred {
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
