package yield

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/portclaim/portclaim/pkg/plan"
	"github.com/portclaim/portclaim/pkg/systemd"
)

// maxDependents bounds what one stop may take along: more is not a
// service's family, and portclaim does not do that.
const maxDependents = 64

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
