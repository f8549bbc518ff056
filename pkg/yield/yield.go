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
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/portclaim/portclaim/pkg/actionlog"
	"github.com/portclaim/portclaim/pkg/claim"
	"github.com/portclaim/portclaim/pkg/claimstore"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/gather"
	"github.com/portclaim/portclaim/pkg/holder"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/plan"
	"github.com/portclaim/portclaim/pkg/policy"
	"github.com/portclaim/portclaim/pkg/sockets"
	"github.com/portclaim/portclaim/pkg/systemd"
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
	Note   string
	Sys    *systemd.Manager
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

// yieldFacts reads the asked units (with every socket that activates
// them: a service stopped without its socket would be started again by
// it, or leave it failed), every active unit a stop of them would take
// along (those that depend on them, and helpers that stop when nothing
// needs them), and every record on them.
func (s *Service) yieldFacts(ctx context.Context, who string, req YieldRequest) (plan.YieldInput, error) {
	in := plan.YieldInput{User: who, Authority: s.Authority, Service: req.Service, Ports: req.Ports,
		Facts: map[string]plan.UnitFacts{}, Now: s.now(),
		ClaimPath: func(user, unit string) string { p, _ := s.Store.Path(user, unit); return p }}
	r := s.newReader(fmt.Sprintf("a stop of %s", strings.Join(req.Units, " and ")))
	asked, err := withSockets(req.Units, func(unit string) ([]string, error) {
		d, err := r.detail(ctx, unit)
		return d.TriggeredBy, err
	})
	if err != nil {
		return in, err
	}
	in.Asked = asked
	deps, err := r.stopReach(ctx, asked)
	if err != nil {
		return in, err
	}
	in.Dependents = deps
	for _, u := range plannedUnits(in) {
		if in.Facts[u], err = r.facts(ctx, u); err != nil {
			return in, err
		}
	}
	if in.Triggered, in.TriggerProblems, err = r.triggerReach(ctx, who, plannedUnits(in)); err != nil {
		return in, err
	}
	in.Queued = r.queued
	return in, nil
}

// withSockets adds to asked every socket that activates one of them (as
// triggers says), sockets' own included; more than maxUnits in all is
// refused, not cut short: a socket left out would start its service again.
func withSockets(asked []string, triggers func(unit string) ([]string, error)) ([]string, error) {
	out := slices.Clone(asked)
	for i := 0; i < len(out); i++ {
		socks, err := triggers(out[i])
		if err != nil {
			return out, err
		}
		for _, sock := range socks {
			if slices.Contains(out, sock) {
				continue
			}
			if len(out) == maxUnits {
				return out, fmt.Errorf("%s and the sockets that activate them are more than %d units; portclaim does not make that many yield at once", strings.Join(asked, " and "), maxUnits)
			}
			out = append(out, sock)
		}
	}
	return out, nil
}

// stopsOnlyPlanned reads again what a stop of unit would take along, just
// before it: a unit that became active since the plan (a socket-activated
// service that Requires= it), or that has a job queued now, and is not
// planned, would go down with no record, or lose root's job. It says why
// the stop must not happen, or "".
func (s *Service) stopsOnlyPlanned(ctx context.Context, who, unit string, planned []string, triggered []plan.Triggered) string {
	r := s.newReader("a stop of " + unit)
	deps, err := r.stopReach(ctx, []string{unit})
	if err != nil {
		return "reading again what its stop takes along: " + err.Error()
	}
	for _, d := range deps {
		if !slices.Contains(planned, d.Unit) {
			return fmt.Sprintf("a stop now would also stop %s (it depends on %s), which was not running when this yield was planned", d.Unit, d.Via)
		}
	}
	now, problems, err := r.triggerReach(ctx, who, append([]string{unit}, plan.DependentUnits(deps)...))
	if err != nil {
		return "reading again what its stop would start: " + err.Error()
	}
	if len(problems) > 0 {
		return "a stop now would " + strings.Join(problems, "; ")
	}
	for _, t := range now {
		if !slices.ContainsFunc(triggered, func(p plan.Triggered) bool { return p.Unit == t.Unit }) {
			return fmt.Sprintf("a stop now would start %s (%s= of %s), which was running when this yield was planned", t.Unit, t.Via, t.By)
		}
	}
	for _, q := range r.queued {
		if !slices.Contains(planned, q) {
			return fmt.Sprintf("systemd has a job queued for %s now, which a stop would cancel", q)
		}
	}
	return ""
}

// reader reads what systemd says of units, each once for one request,
// and the records on them from one read of the store.
type reader struct {
	s       *Service
	what    string // what is read for, for the message of the bound
	limit   int    // units read at most; 0: no bound
	details map[string]systemd.Detail
	records map[string][]claimstore.Entry // nil until needed
	queued  []string                      // units read that have a job queued, in order
}

func (s *Service) newReader(what string) *reader {
	return &reader{s: s, what: what, limit: 4 * maxDependents, details: map[string]systemd.Detail{}}
}

func (r *reader) detail(ctx context.Context, unit string) (systemd.Detail, error) {
	if d, ok := r.details[unit]; ok {
		return d, nil
	}
	if r.limit > 0 && len(r.details) == r.limit {
		return systemd.Detail{}, fmt.Errorf("%s reaches more than %d units; portclaim does not do that", r.what, r.limit)
	}
	d, err := r.s.Sys.Inspect(ctx, unit)
	if err != nil {
		return d, err
	}
	r.details[unit] = d
	if d.Queued {
		r.queued = append(r.queued, unit)
	}
	return d, nil
}

// facts is what systemd says of unit, and every record on it.
func (r *reader) facts(ctx context.Context, unit string) (plan.UnitFacts, error) {
	d, err := r.detail(ctx, unit)
	if err != nil {
		return plan.UnitFacts{}, err
	}
	records, err := r.recordsOn(d)
	return plan.UnitFacts{Unit: d.Unit, Conditions: d.Conditions, Records: records}, err
}

// stopReach finds every active unit a stop of roots takes along: those
// that depend on them (systemd stops them first), and helpers they need
// that stop once nothing needs them; each with the root whose stop
// reaches it and the unit it depends on directly.
func (r *reader) stopReach(ctx context.Context, roots []string) ([]plan.Dependent, error) {
	type item struct{ unit, of, via string }
	var queue []item
	var out []plan.Dependent
	seen := map[string]bool{}
	reach := func(d systemd.Detail, of string) error {
		for _, dep := range d.StopsWith {
			queue = append(queue, item{dep, of, d.Name})
		}
		// A helper this one needs, which stops when nothing that needs
		// it runs: it goes down with it.
		for _, n := range d.Needs {
			h, err := r.detail(ctx, n)
			if err != nil {
				return err
			}
			if h.StopWhenUnneeded && h.Active() {
				queue = append(queue, item{n, of, d.Name})
			}
		}
		return nil
	}
	for _, u := range roots {
		seen[u] = true
		d, err := r.detail(ctx, u)
		if err != nil {
			return nil, err
		}
		if err := reach(d, u); err != nil {
			return nil, err
		}
	}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		if seen[it.unit] {
			continue
		}
		seen[it.unit] = true
		d, err := r.detail(ctx, it.unit)
		if err != nil {
			return nil, err
		}
		if !d.Active() {
			continue // nothing to stop: systemd stops only what runs
		}
		if len(out) == maxDependents {
			return nil, fmt.Errorf("stopping %s would stop more than %d other units; portclaim does not do that", strings.Join(roots, " and "), maxDependents)
		}
		out = append(out, plan.Dependent{Unit: it.unit, Of: it.of, Via: it.via})
		if err := reach(d, it.of); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// startReach reads what a start of d would reach (walkStart), for a
// release by in.User: the units not running that it pulls in, by
// whether the policy lets them come back along, the running ones it
// would stop, those with a job queued.
func (r *reader) startReach(ctx context.Context, d systemd.Detail, in *plan.ReleaseInput) error {
	w, err := r.walkStart(ctx, d, func(u string) bool { return in.Stale || r.s.allows(in.User, u) })
	if err != nil {
		return err
	}
	in.Conflicting[d.Name] = w.stops
	in.Queued[d.Name] = w.queued
	in.Reach[d.Name] = plan.StartReach{Along: startOrder(w.along), Skipped: w.skipped, Needed: w.needed}
	return nil
}

// allows reports whether unit may yield to user, and so come back (or
// start) on user's account: root's word for root mode, else the policy's.
func (s *Service) allows(user, unit string) bool {
	return s.Authority.Root || s.Authority.Policy != nil && s.Authority.Policy.Allows(user, unit)
}

// startWalk is what a start of a unit reaches.
type startWalk struct {
	// along: the unit, and the units not running that it pulls in and
	// may start (and what those pull in, in turn).
	along []systemd.Detail
	// skipped: not running, pulled in through Wants= alone, and not to
	// be started: a start with job mode ignore-requirements leaves them
	// out. needed: the same through Requires=, BindsTo= or Upholds=,
	// "x (Requires= of y)": without them the start may not work.
	skipped, needed []string
	stops           []string // running units a start of those along would stop (Conflicts=)
	queued          []string // units along, or reached, with a job queued
}

// walkStart reads what a start of d would reach: the units not running
// that it pulls in (Requires=, BindsTo=, Upholds=, Wants=), through
// those may lets start (systemd starts what they pull in too); units a
// claim keeps down are no side effect (their condition skips them). A
// running unit pulls in nothing: systemd does not start what it wants
// again.
func (r *reader) walkStart(ctx context.Context, d systemd.Detail, may func(unit string) bool) (startWalk, error) {
	var w startWalk
	seen := map[string]bool{d.Name: true}
	for _, n := range d.Names {
		seen[n] = true
	}
	if d.Queued {
		w.queued = append(w.queued, d.Name)
	}
	skipped := map[string]bool{}
	w.along = []systemd.Detail{d}
	for i := 0; i < len(w.along); i++ {
		u := w.along[i]
		for _, c := range u.Conflicts {
			cd, err := r.detail(ctx, c)
			if err == nil && cd.Active() && !slices.Contains(w.stops, c) {
				w.stops = append(w.stops, c)
			}
		}
		for _, p := range u.Pulls {
			if skipped[p.Unit] && !p.Skippable() {
				delete(skipped, p.Unit) // needed after all
			} else if seen[p.Unit] || skipped[p.Unit] {
				continue
			}
			if len(seen)+len(skipped) > 4*maxDependents {
				return w, fmt.Errorf("a start of %s reaches more than %d units; portclaim does not start it", d.Name, 4*maxDependents)
			}
			nd, err := r.detail(ctx, p.Unit)
			if err != nil {
				return w, err
			}
			if nd.Queued && !slices.Contains(w.queued, p.Unit) {
				w.queued = append(w.queued, p.Unit)
			}
			down, err := r.keptDown(nd)
			if err != nil {
				return w, err
			}
			switch {
			case nd.Active() || down || !startable(nd):
				seen[p.Unit] = true
			case may(p.Unit):
				seen[p.Unit] = true
				w.along = append(w.along, nd)
			case p.Skippable():
				skipped[p.Unit] = true
			default:
				seen[p.Unit] = true
				w.needed = append(w.needed, fmt.Sprintf("%s (%s= of %s)", p.Unit, p.Via, u.Name))
			}
		}
	}
	w.skipped = sortedKeys(skipped)
	return w, nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// keptDown reports whether a claim keeps d down: a record on it, under
// any of its names, that is not a release under way and that its
// condition (or root's mask) heeds, or that cannot be read (it is not
// acted on). Its start is skipped, not a side effect.
func (r *reader) keptDown(d systemd.Detail) (bool, error) {
	records, err := r.recordsOn(d)
	for _, e := range records {
		if !e.Releasing && (e.Problem != "" || e.Claim.Method != claim.ByNothing) {
			return true, err
		}
	}
	return false, err
}

// startable reports whether a start job of d could start it: a unit not
// found, masked or broken is not started (a Wants= of it is dropped, a
// Requires= fails the start), so it is no side effect.
func startable(d systemd.Detail) bool {
	switch d.LoadState {
	case "not-found", "masked", "bad-setting", "error":
		return false
	}
	return true
}

// recordsOn is every user's record on d, under any of its names (a
// unit the policy names by an alias beside its own name is one unit).
func (r *reader) recordsOn(d systemd.Detail) ([]claimstore.Entry, error) {
	if r.records == nil {
		var err error
		if r.records, err = r.s.Store.Records(); err != nil {
			return nil, err
		}
	}
	out := slices.Clone(r.records[d.Name])
	for _, n := range d.Names {
		if n != d.Name {
			out = append(out, r.records[n]...)
		}
	}
	return out, nil
}

// startOrder orders units to start one job each: a unit after those it
// is ordered after (After=, or their Before=), else as found.
func startOrder(ds []systemd.Detail) []string {
	after := func(a, b systemd.Detail) bool { // a starts after b
		return slices.Contains(a.After, b.Name) || slices.Contains(b.Before, a.Name)
	}
	var out []string
	done := map[string]bool{}
	for len(out) < len(ds) {
		progressed := false
		for _, d := range ds {
			if done[d.Name] {
				continue
			}
			ready := true
			for _, o := range ds {
				if !done[o.Name] && o.Name != d.Name && after(d, o) {
					ready = false
				}
			}
			if ready {
				out, done[d.Name], progressed = append(out, d.Name), true, true
			}
		}
		if !progressed { // an ordering cycle: systemd breaks it too
			for _, d := range ds {
				if !done[d.Name] {
					out, done[d.Name] = append(out, d.Name), true
				}
			}
		}
	}
	return out
}

// triggerReach reads what the stops of planned would start: the units
// each one's OnSuccess= (it goes inactive) and OnFailure= (an ExecStop=
// that fails leaves it failed) name that do not run, with what their
// starts would reach. Those the policy does not let yield to the user
// are refused as dependents are; a start that would pull in a unit the
// policy does not name, stop a running unit the yield does not stop, or
// cancel root's jobs is a side effect nothing records: said in problems.
func (r *reader) triggerReach(ctx context.Context, who string, planned []string) ([]plan.Triggered, []string, error) {
	var out []plan.Triggered
	var problems []string
	for _, u := range planned {
		d, err := r.detail(ctx, u)
		if err != nil || !d.Active() {
			if err != nil {
				return nil, nil, err
			}
			continue // a stop of what does not run triggers nothing
		}
		for _, t := range []struct {
			via   string
			units []string
			mode  string
		}{{"OnSuccess", d.OnSuccess, d.OnSuccessJobMode}, {"OnFailure", d.OnFailure, d.OnFailureJobMode}} {
			for _, unit := range t.units {
				if slices.Contains(planned, unit) || slices.ContainsFunc(out, func(tr plan.Triggered) bool { return tr.Unit == unit }) {
					continue
				}
				td, err := r.detail(ctx, unit)
				if err != nil {
					return nil, nil, err
				}
				down, err := r.keptDown(td)
				if err != nil {
					return nil, nil, err
				}
				if td.Active() || down || !startable(td) {
					continue
				}
				out = append(out, plan.Triggered{Unit: unit, By: u, Via: t.via})
				if !r.s.allows(who, unit) {
					continue // refused for itself
				}
				if t.mode != "" && t.mode != "replace" && t.mode != "fail" {
					problems = append(problems, fmt.Sprintf("start %s with job mode %s (%sJobMode= of %s)", unit, t.mode, t.via, u))
				}
				w, err := r.walkStart(ctx, td, func(n string) bool { return r.s.allows(who, n) })
				if err != nil {
					return nil, nil, err
				}
				for _, n := range append(w.needed, w.skipped...) {
					problems = append(problems, fmt.Sprintf("start %s, which %s (%s= of %s) pulls in and the policy does not name", n, unit, t.via, u))
				}
				for _, v := range w.stops {
					if !slices.Contains(planned, v) {
						problems = append(problems, fmt.Sprintf("stop %s (Conflicts=), which %s (%s= of %s) would start", v, unit, t.via, u))
					}
				}
				for _, q := range w.queued {
					problems = append(problems, fmt.Sprintf("cancel the job systemd has queued for %s, reached by %s (%s= of %s)", q, unit, t.via, u))
				}
			}
		}
	}
	return out, problems, nil
}

// rollback gives back the claims this run wrote, after a later step
// failed: the units it stopped start again before their records go. It
// has a budget of its own: the step that failed may have used the work's.
func (s *Service) rollback(ctx context.Context, who string, written []claim.Claim, outcome map[string]*UnitResult) {
	var units []string
	for _, c := range written {
		units = append(units, c.Unit)
	}
	if len(units) == 0 {
		return
	}
	ctx, cancel := s.work(ctx, len(units))
	defer cancel()
	rel, err := s.releaseUnits(ctx, who, units)
	if err != nil {
		for _, u := range units {
			if outcome[u].Outcome != Failed {
				outcome[u].Outcome, outcome[u].Detail = Failed, "rolling back: "+err.Error()
			}
		}
		return
	}
	for _, r := range rel.Units {
		o := outcome[r.Unit]
		if o == nil || o.Outcome == Failed {
			continue
		}
		switch r.Outcome {
		case Restarted, Removed:
			o.Outcome, o.Detail = RolledBack, "given back because another step failed: "+r.Detail
		default:
			o.Outcome, o.Detail = Failed, "rolling back: "+string(r.Outcome)+": "+r.Detail
		}
	}
}

// portWait bounds how long a yield waits for ports after its stops are
// done: systemd has killed the units' processes by then, and the kernel
// closes their sockets at once. A socket still there is someone else's,
// to report, not to wait for while every other user waits behind the lock.
const portWait = 2 * time.Second

// waitFree waits, briefly, until no socket of another uid than the
// user's overlaps the ports (the user's own are theirs to hold). It polls
// the socket table alone, and names the holder (a scan of /proc) once, if
// one is left.
func (s *Service) waitFree(ctx context.Context, res YieldResult, req YieldRequest, uid uint32) YieldResult {
	deadline := time.Now().Add(min(s.Wait, portWait))
	for {
		sock, want, err := s.inTheWay(req.Ports, uid)
		if err != nil || sock == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return s.held(res, sock, want, uid, err)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

// portsNow records who holds the ports at this moment.
func (s *Service) portsNow(res YieldResult, req YieldRequest, uid uint32) YieldResult {
	sock, want, err := s.inTheWay(req.Ports, uid)
	return s.held(res, sock, want, uid, err)
}

// held records in res who holds the ports: sock in the way of want (as
// the caller uid may learn it), or the error reading them.
func (s *Service) held(res YieldResult, sock *host.Socket, want endpoint.Endpoint, uid uint32, err error) YieldResult {
	switch {
	case err != nil:
		res.HeldBy = err.Error()
	case sock != nil:
		res.HeldBy = fmt.Sprintf("%s is held at %s by %s", want.PortProto(), sock.Endpoint, s.describe(*sock, uid))
	default:
		res.HeldBy = ""
	}
	res.PortsFree = res.HeldBy == ""
	return res
}

// inTheWay finds the first socket of another uid than uid on ports, and
// the port it is in the way of; nil when there is none.
func (s *Service) inTheWay(ports []endpoint.Endpoint, uid uint32) (*host.Socket, endpoint.Endpoint, error) {
	socks, err := s.sockets(ports)
	if err != nil {
		return nil, endpoint.Endpoint{}, err
	}
	for _, want := range ports {
		for i, sock := range socks {
			if endpoint.Overlap(want, sock.Endpoint) && sock.UID != uid {
				return &socks[i], want, nil
			}
		}
	}
	return nil, endpoint.Endpoint{}, nil
}

func (s *Service) sockets(ports []endpoint.Endpoint) ([]host.Socket, error) {
	var nums []uint16
	for _, p := range ports {
		nums = append(nums, p.Port)
	}
	tab, err := sockets.Read(s.Places.ProcRoot, sockets.Around(nums, 0)...)
	return tab.Sockets, err
}

// describe names who holds a socket for whoever asked. Root (root mode)
// sees everything. A user asking the broker learns of a socket only what
// they could learn themselves: root's system unit by name (systemd tells
// anyone which unit runs), their own unit by the socket's cgroup (the
// broker, without the capability to read users' open files, could only
// guess the process; the client names it), and of anyone else's socket
// its uid alone: with /proc mounted hidepid, they could not see more.
func (s *Service) describe(sock host.Socket, caller uint32) string {
	held, err := gather.Who(sock.Port, sock.Proto, nil, s.Places)
	var h *holder.Holder // the gather package's attribution
	if err == nil {
		for i := range held {
			if held[i].Socket.Inode == sock.Inode && held[i].Holder.Known() {
				h = &held[i].Holder
			}
		}
	}
	switch {
	case h == nil:
		return fmt.Sprintf("a process of uid %d", sock.UID)
	case s.Authority.Root:
		return h.Describe(gather.NameOf)
	case h.Unit.Name != "" && (sock.UID == caller || sock.UID == 0 && !h.Unit.User):
		named := *h
		named.PID, named.Command = 0, "" // known by its unit alone
		return named.Describe(gather.NameOf)
	}
	return fmt.Sprintf("a socket of uid %d", sock.UID)
}

// Release gives back who's claims on req's units (with the units stopped
// along with them), or all of them.
func (s *Service) Release(ctx context.Context, who string, req ReleaseRequest) (ReleaseResult, error) {
	if err := req.Check(); err != nil {
		return ReleaseResult{}, err
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return ReleaseResult{}, err
	}
	defer unlock()
	return s.release(ctx, who, req.Units, req.All)
}

// lock takes the store's lock and, holding it, the policy as it is now.
func (s *Service) lock(ctx context.Context) (func(), error) {
	unlock, err := s.lockStore(ctx)
	if err != nil {
		return nil, err
	}
	if s.Policy != nil && !s.Authority.Root {
		pol, problem := s.Policy()
		if pol == nil {
			unlock()
			return nil, fmt.Errorf("%s", problem)
		}
		if pol.ClaimsDir != s.Store.Dir {
			unlock()
			return nil, fmt.Errorf("the policy's claims directory changed to %s; ask again", pol.ClaimsDir)
		}
		s.Authority.Policy = pol
	}
	return unlock, nil
}

// lockStore takes the store's lock, once no records wait to be moved
// into or out of it: a record written where the move has passed would
// be one no condition sees, a release there one of nothing.
func (s *Service) lockStore(ctx context.Context) (func(), error) {
	unlock, err := s.Store.Lock(ctx)
	if err != nil || s.Note == "" {
		return unlock, err
	}
	from, err := claimstore.Moving(s.Note, s.Store.Dir)
	if err == nil && from != "" {
		err = fmt.Errorf("the claims are in %s, not in %s: the claims directory is being moved (portclaim-move-claims.service; `journalctl -u portclaim-move-claims`); ask again in a moment", from, s.Store.Dir)
	}
	if err != nil {
		unlock()
		return nil, err
	}
	return unlock, nil
}

// releaseUnits releases exactly who's claims on units (a rollback: no
// dependents, no unfinished releases of other units).
func (s *Service) releaseUnits(ctx context.Context, who string, units []string) (ReleaseResult, error) {
	return s.releaseWhere(ctx, who, func(e claimstore.Entry) bool { return !e.Releasing && slices.Contains(units, e.Unit) })
}

// finishReleases finishes who's releases under way (begun, or asked for
// and deferred), but of skip.
func (s *Service) finishReleases(ctx context.Context, who string, skip []string) (ReleaseResult, error) {
	return s.releaseWhere(ctx, who, func(e claimstore.Entry) bool { return pending(e) && !slices.Contains(skip, e.Unit) })
}

// pending reports whether e is a release under way: begun (its record
// in .releasing), or asked for and deferred (GiveBack).
func pending(e claimstore.Entry) bool {
	return e.Releasing || e.Problem == "" && e.Claim.GiveBack != nil
}

func (s *Service) releaseWhere(ctx context.Context, who string, pick func(claimstore.Entry) bool) (ReleaseResult, error) {
	entries, err := s.Store.List(who)
	if err != nil {
		return ReleaseResult{}, err
	}
	return s.releaseEntries(ctx, who, slices.DeleteFunc(entries, func(e claimstore.Entry) bool { return !pick(e) }), false)
}

// release picks who's records for units (all: every one), the dependents
// stopped with them, and every release of who's still under way.
func (s *Service) release(ctx context.Context, who string, units []string, all bool) (ReleaseResult, error) {
	return s.releaseWhere(ctx, who, func(e claimstore.Entry) bool {
		return all || pending(e) || slices.Contains(units, e.Unit) || slices.Contains(units, e.Claim.With)
	})
}

// releaseEntries gives back who's entries; stale: because the policy or
// the user database no longer allows them (reconcile). ctx bounds the
// reads before the plan; the steps run on a budget of their own.
func (s *Service) releaseEntries(ctx context.Context, who string, entries []claimstore.Entry, stale bool) (ReleaseResult, error) {
	var res ReleaseResult
	if len(entries) == 0 {
		return res, nil
	}
	r := s.newReader("a release of " + who + "'s claims")
	r.limit = 0 // each start's reach is bounded below
	in := plan.ReleaseInput{User: who, Entries: entries, Facts: map[string]plan.UnitFacts{},
		Conflicting: map[string][]string{}, Queued: map[string][]string{}, Reach: map[string]plan.StartReach{},
		Stale: stale, UID: ^uint32(0)}
	if uid, ok := lookupUID(ctx, who); ok {
		in.UID = uid
	}
	in.HolderOf = func(sock host.Socket) string { return s.describe(sock, in.UID) }
	var ports []endpoint.Endpoint
	for _, e := range entries {
		for _, u := range []string{e.Unit, e.Claim.With} {
			if _, done := in.Facts[u]; u == "" || done {
				continue
			}
			facts, err := r.facts(ctx, u)
			if err != nil {
				return res, err
			}
			in.Facts[u] = facts
		}
		// Read for every unit released, also one read first as the unit
		// another was stopped with (a dependent may sort first).
		if _, done := in.Reach[e.Unit]; !done {
			if err := r.startReach(ctx, r.details[e.Unit], &in); err != nil {
				return res, err
			}
		}
		ports = append(ports, e.Claim.Ports...)
	}
	if len(ports) > 0 {
		socks, err := s.sockets(ports)
		if err != nil {
			return res, err
		}
		in.Sockets = socks
	}
	steps := plan.PlanRelease(in)
	ctx, cancel := s.work(ctx, len(steps))
	defer cancel()
	for _, st := range steps {
		res.Units = append(res.Units, s.releaseOne(ctx, who, st))
	}
	return res, nil
}

func (s *Service) releaseOne(ctx context.Context, who string, st plan.ReleaseStep) UnitResult {
	e, c := st.Entry, st.Entry.Claim
	r := UnitResult{Unit: e.Unit, With: c.With, Detail: st.Why}
	log := func(action, result, msg string) {
		s.Log.Add(actionlog.Entry{Action: action, Unit: e.Unit, User: who, Ports: c.Ports, Result: result, Msg: msg})
	}
	switch st.Action {
	case plan.Keep:
		r.Outcome = Kept
		log("release", "kept", st.Why)
		return r
	case plan.Defer:
		r.Outcome = Deferred
		if st.Held != nil {
			r.Held = &HeldSocket{Socket: st.Held.Endpoint, Inode: st.Held.Inode, Holder: st.Holder}
		}
		if err := s.keepGiveBack(e, st.Why); err != nil {
			r.Detail += "; and recording that it is to be given back failed: " + err.Error()
		}
		log("defer", "deferred", st.Why)
		return r
	case plan.RemoveOnly:
		var err error
		if e.Releasing {
			err = s.Store.EndRelease(who, e.Unit)
		} else {
			err = s.Store.Remove(who, e.Unit)
		}
		if err != nil {
			r.Outcome, r.Detail = Failed, err.Error()
			return r
		}
		if st.Unmask && s.unmask(e.Unit, who) {
			if err := s.Sys.Reload(ctx); err != nil {
				r.Detail += fmt.Sprintf("; daemon-reload after unmasking: %v", err)
			}
		}
		r.Outcome = Removed
		log("unclaim", "done", st.Why)
		return r
	}
	// Restart: the record moves aside first (the condition then lets the
	// unit start), stays until the unit runs, and says why if it does not.
	if c.Release == nil {
		c.Release = &claim.Release{Began: s.now().UTC()}
	}
	c.Release.Attempts++
	var err error
	if e.Releasing {
		err = s.Store.UpdateRelease(c)
	} else {
		err = s.Store.BeginRelease(c)
	}
	if err != nil {
		r.Outcome, r.Detail = Failed, err.Error()
		return r
	}
	crashPoint("after-begin-release")
	if st.Unmask && s.unmask(e.Unit, who) {
		if err := s.Sys.Reload(ctx); err != nil {
			return s.releaseFailed(r, c, fmt.Sprintf("daemon-reload after unmasking: %v", err))
		}
	}
	result, err := s.start(ctx, e.Unit, st.Each)
	log("start", jobText(result, err), strings.Join(st.Each, " "))
	if err != nil || result != "done" {
		return s.releaseFailed(r, c, "starting it: "+jobText(result, err)+inTheWay(st, who))
	}
	// A simple service's start job is done once its process runs; if it
	// fails a moment later (its port taken, say), the record must stay.
	select {
	case <-time.After(min(settle, s.Wait)):
	case <-ctx.Done():
	}
	d, err := s.Sys.Inspect(ctx, e.Unit)
	if err != nil || d.ActiveState != "active" {
		state := "unknown"
		if err == nil {
			state = d.ActiveState
		}
		return s.releaseFailed(r, c, "its start job finished, but it is "+state+inTheWay(st, who))
	}
	if err := s.Store.EndRelease(who, e.Unit); err != nil {
		r.Outcome, r.Detail = Failed, err.Error()
		return r
	}
	log("unclaim", "done", "started again")
	r.Outcome, r.Detail = Restarted, "started again, as it ran before the first claim"
	if len(st.Without) > 0 {
		r.Detail += fmt.Sprintf(", without %s (Wants=), which is down and which the policy does not name", strings.Join(st.Without, ", "))
	}
	return r
}

// start starts unit: with job mode replace, or when each is given,
// exactly those units (unit among them), with ignore-requirements, in
// that order. It returns how unit's job ended.
func (s *Service) start(ctx context.Context, unit string, each []string) (systemd.JobResult, error) {
	if len(each) == 0 {
		return s.Sys.Start(ctx, unit, s.Wait)
	}
	results, err := s.Sys.StartEach(ctx, each, s.Wait)
	if err != nil {
		return "", err
	}
	for i, u := range each {
		if u == unit {
			return results[i], nil
		}
	}
	return "", fmt.Errorf("%s is not among the units to start", unit)
}

// keepGiveBack records in a deferred claim that its user asked for it
// back: the claim stays where its condition keeps the unit down (a
// target's start must not start it into a port still held), and the
// next release, switch or reconcile gives it back.
func (s *Service) keepGiveBack(e claimstore.Entry, why string) error {
	c := e.Claim
	if e.Releasing || c.GiveBack != nil && c.GiveBack.Why == why {
		return nil
	}
	gb := claim.GiveBack{AskedAt: s.now().UTC(), Why: why}
	if c.GiveBack != nil {
		gb.AskedAt = c.GiveBack.AskedAt
	}
	c.GiveBack, c.Version = &gb, claim.Version
	return s.Store.Write(c)
}

// settle is how long a started unit must keep running (not activating,
// not restarting) before its release counts as done: a best effort for a
// simple service, whose start job is done once its process runs; one
// that fails later than this is running when its record goes, and the
// journal has what follows.
const settle = 2 * time.Second

// releaseFailed keeps the record of a release that did not bring the unit
// back, with why, for the next run to try again.
func (s *Service) releaseFailed(r UnitResult, c claim.Claim, why string) UnitResult {
	c.Release.LastError = why
	if err := s.Store.UpdateRelease(c); err != nil {
		why += "; and recording that failed: " + err.Error()
	}
	r.Outcome = Failed
	r.Detail = why + "; its record stays (" + filepath.Join(s.Store.UserDir(c.User), ".releasing", c.Unit) + "), and the next release or reconcile tries again"
	return r
}

// Reconcile gives back what the policy no longer allows (a user removed,
// a unit no longer listed) and finishes every release under way. It runs
// at boot and on every nixos-rebuild switch that changes the policy. A
// user whose records cannot be read or given back does not stop the
// others': every user is done, and every error returned, joined.
func (s *Service) Reconcile(ctx context.Context) (map[string]ReleaseResult, error) {
	unlock, err := s.lockStore(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	users, err := s.Store.Users()
	if err != nil {
		return nil, err
	}
	// Asked once, and only when a user is not found.
	var ready *bool
	lookupsReady := func() bool {
		if ready == nil {
			r := s.lookupsReady(ctx)
			ready = &r
		}
		return *ready
	}
	out := map[string]ReleaseResult{}
	var errs []error
	for _, u := range users {
		res, err := s.reconcileUser(ctx, u, lookupsReady)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
		}
		if len(res.Units) > 0 {
			out[u] = res
		}
	}
	return out, errors.Join(errs...)
}

// lookupsReady reports whether a user the database does not find is
// gone: passwd is served from local files alone, or
// nss-user-lookup.target is reached (the network directories' services,
// sssd, nslcd, come up before it; reconcile is ordered after it).
func (s *Service) lookupsReady(ctx context.Context) bool {
	if conf, err := os.ReadFile(nsswitchPath); err == nil && localUsers(conf) {
		return true
	}
	if s.Sys == nil {
		return false
	}
	d, err := s.Sys.Inspect(ctx, "nss-user-lookup.target")
	return err == nil && d.ActiveState == "active"
}

func (s *Service) reconcileUser(ctx context.Context, u string, lookupsReady func() bool) (ReleaseResult, error) {
	var res ReleaseResult
	notFound := userGone(ctx, u)
	exists := !notFound || !lookupsReady()
	if notFound && exists {
		s.Log.Add(actionlog.Entry{Action: "keep", User: u, Result: "kept",
			Msg: "the user database does not find " + u + ", but its network sources may not be up (nss-user-lookup.target is not reached): " + u + "'s claims are kept"})
	}
	entries, err := s.Store.List(u)
	if err != nil {
		return res, err
	}
	var stale, unfinished []claimstore.Entry
	for _, e := range entries {
		switch {
		case plan.Stale(e, s.Authority.Policy, exists) != "":
			stale = append(stale, e)
		case pending(e):
			unfinished = append(unfinished, e)
		}
	}
	var errs []error
	for _, part := range []struct {
		entries []claimstore.Entry
		stale   bool
	}{{stale, true}, {unfinished, false}} {
		r, err := s.releaseEntries(ctx, u, part.entries, part.stale)
		if err != nil {
			errs = append(errs, err)
		}
		res.Units = append(res.Units, r.Units...)
	}
	return res, errors.Join(errs...)
}

// mask links /run/systemd/transient/<unit> to /dev/null (root mode).
func (s *Service) mask(unit, who string) error {
	if s.Places.Masked(unit) {
		return nil
	}
	link := filepath.Join(s.Places.TransientDir, unit)
	if err := os.MkdirAll(s.Places.TransientDir, 0o755); err != nil {
		return err
	}
	if err := os.Symlink("/dev/null", link); err != nil {
		return fmt.Errorf("masking %s: %w", unit, err)
	}
	s.Log.Add(actionlog.Entry{Action: "mask", Unit: unit, User: who, Result: "done", Msg: link + " -> /dev/null"})
	return nil
}

// unmask removes only a /dev/null link portclaim could have made.
func (s *Service) unmask(unit, who string) bool {
	if !s.Places.Masked(unit) {
		return false
	}
	link := filepath.Join(s.Places.TransientDir, unit)
	if err := os.Remove(link); err != nil {
		return false
	}
	s.Log.Add(actionlog.Entry{Action: "unmask", Unit: unit, User: who, Result: "done", Msg: link})
	return true
}

// inTheWay says, after a failed start of a unit whose claim the policy no
// longer allows, who holds its port and the two ways out: the user frees
// it, or root lets the unit yield to them again.
func inTheWay(st plan.ReleaseStep, who string) string {
	if st.InTheWay == "" {
		return ""
	}
	port := ""
	if ps := st.Entry.Claim.Ports; len(ps) > 0 {
		port = " " + strconv.Itoa(int(ps[0].Port))
	}
	return fmt.Sprintf(" (%s, and the policy no longer lets %s yield to %s); either %s frees the port (`portclaim who%s` names the unit, `systemctl --user stop UNIT` as %s stops it) and the next reconcile or boot starts %s, or root lets it yield to %s again (services.portclaim.yield.\"%s\".users)",
		st.InTheWay, st.Entry.Unit, who, who, port, who, st.Entry.Unit, who, st.Entry.Unit)
}

func jobText(result systemd.JobResult, err error) string {
	switch {
	case err != nil:
		return err.Error()
	case result == "":
		return "timeout"
	}
	return string(result)
}

// testPause waits when PORTCLAIM_TEST_PAUSE is point=DURATION, or
// point:unit=DURATION, or point[:unit]=/PATH (until PATH exists): at most
// a minute, the end-to-end tests' window to change the system between two
// steps on unit, as a slow step before (fsyncs, earlier stops) would leave
// one. A path lets a test end the pause once it has acted, on a loaded
// machine as on an idle one. Only the unit's own environment (root's) can
// set it for the broker.
func testPause(point, unit string) {
	at, d, ok := strings.Cut(os.Getenv("PORTCLAIM_TEST_PAUSE"), "=")
	if !ok || (at != point && at != point+":"+unit) {
		return
	}
	if strings.HasPrefix(d, "/") {
		for end := time.Now().Add(time.Minute); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if _, err := os.Stat(d); err == nil {
				return
			}
		}
		return
	}
	if dur, err := time.ParseDuration(d); err == nil {
		time.Sleep(min(dur, time.Minute))
	}
}

// crashPoint kills this process when PORTCLAIM_TEST_CRASH names point:
// fault injection for the end-to-end tests that prove a run killed at
// that step converges on the next one. Only the unit's own environment
// (root's) can set it for the broker.
func crashPoint(point string) {
	if os.Getenv("PORTCLAIM_TEST_CRASH") == point {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
}
