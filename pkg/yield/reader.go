package yield

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/portclaim/portclaim/pkg/claim"
	"github.com/portclaim/portclaim/pkg/plan"
	"github.com/portclaim/portclaim/pkg/protocol"
	"github.com/portclaim/portclaim/pkg/systemd"
)

// yieldFacts reads the asked units (with every socket that activates
// them: a service stopped without its socket would be started again by
// it, or leave it failed), every active unit a stop of them would take
// along (those that depend on them, and helpers that stop when nothing
// needs them), and every record on them.
func (s *Service) yieldFacts(ctx context.Context, who string, req protocol.YieldRequest) (plan.YieldInput, error) {
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
			if len(out) == protocol.MaxUnits {
				return out, fmt.Errorf("%s and the sockets that activate them are more than %d units; portclaim does not make that many yield at once", strings.Join(asked, " and "), protocol.MaxUnits)
			}
			out = append(out, sock)
		}
	}
	return out, nil
}

// reader reads what systemd says of units, each once for one request,
// and the records on them from one read of the store.
type reader struct {
	s       *Service
	what    string // what is read for, for the message of the bound
	limit   int    // units read at most; 0: no bound
	details map[string]systemd.Detail
	records map[string][]claim.Record // nil until needed
	queued  []string                  // units read that have a job queued, in order
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

// recordsOn is every user's record on d, under any of its names (a
// unit the policy names by an alias beside its own name is one unit).
func (r *reader) recordsOn(d systemd.Detail) ([]claim.Record, error) {
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
