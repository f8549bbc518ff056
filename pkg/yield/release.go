package yield

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portclaim/portclaim/pkg/actionlog"
	"github.com/portclaim/portclaim/pkg/claim"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/plan"
	"github.com/portclaim/portclaim/pkg/protocol"
	"github.com/portclaim/portclaim/pkg/systemd"
)

// Release gives back who's claims on req's units (with the units stopped
// along with them), or all of them.
func (s *Service) Release(ctx context.Context, who string, req protocol.ReleaseRequest) (protocol.ReleaseResult, error) {
	if err := req.Check(); err != nil {
		return protocol.ReleaseResult{}, err
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return protocol.ReleaseResult{}, err
	}
	defer unlock()
	return s.release(ctx, who, req.Units, req.All)
}

// releaseUnits releases exactly who's claims on units (a rollback: no
// dependents, no unfinished releases of other units).
func (s *Service) releaseUnits(ctx context.Context, who string, units []string) (protocol.ReleaseResult, error) {
	return s.releaseWhere(ctx, who, func(e claim.Record) bool { return !e.Releasing && slices.Contains(units, e.Unit) })
}

// finishReleases finishes who's releases under way (begun, or asked for
// and deferred), but of skip.
func (s *Service) finishReleases(ctx context.Context, who string, skip []string) (protocol.ReleaseResult, error) {
	return s.releaseWhere(ctx, who, func(e claim.Record) bool { return pending(e) && !slices.Contains(skip, e.Unit) })
}

// pending reports whether e is a release under way: begun (its record
// in .releasing), or asked for and deferred (GiveBack).
func pending(e claim.Record) bool {
	return e.Releasing || e.Problem == "" && e.Claim.GiveBack != nil
}

func (s *Service) releaseWhere(ctx context.Context, who string, pick func(claim.Record) bool) (protocol.ReleaseResult, error) {
	entries, err := s.Store.List(who)
	if err != nil {
		return protocol.ReleaseResult{}, err
	}
	return s.releaseEntries(ctx, who, slices.DeleteFunc(entries, func(e claim.Record) bool { return !pick(e) }), false)
}

// release picks who's records for units (all: every one), the dependents
// stopped with them, and every release of who's still under way.
func (s *Service) release(ctx context.Context, who string, units []string, all bool) (protocol.ReleaseResult, error) {
	return s.releaseWhere(ctx, who, func(e claim.Record) bool {
		return all || pending(e) || slices.Contains(units, e.Unit) || slices.Contains(units, e.Claim.With)
	})
}

// releaseEntries gives back who's entries; stale: because the policy or
// the user database no longer allows them (reconcile). ctx bounds the
// reads before the plan; the steps run on a budget of their own.
func (s *Service) releaseEntries(ctx context.Context, who string, entries []claim.Record, stale bool) (protocol.ReleaseResult, error) {
	var res protocol.ReleaseResult
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

// releaseOne carries out one step of a release's plan.
func (s *Service) releaseOne(ctx context.Context, who string, st plan.ReleaseStep) protocol.UnitResult {
	r := protocol.UnitResult{Unit: st.Entry.Unit, With: st.Entry.Claim.With, Detail: st.Why}
	switch st.Action {
	case plan.Keep:
		r.Outcome = protocol.Kept
		s.logStep(who, st, "release", "kept", st.Why)
		return r
	case plan.Defer:
		return s.deferRelease(who, st, r)
	case plan.RemoveOnly:
		return s.removeOnly(ctx, who, st, r)
	}
	return s.restart(ctx, who, st, r)
}

// logStep records an action of a release step in the journal.
func (s *Service) logStep(who string, st plan.ReleaseStep, action, result, msg string) {
	s.Log.Add(actionlog.Entry{Action: action, Unit: st.Entry.Unit, User: who, Ports: st.Entry.Claim.Ports, Result: result, Msg: msg})
}

// deferRelease keeps the claim, recording that its user asked for it
// back, and says what it waits for.
func (s *Service) deferRelease(who string, st plan.ReleaseStep, r protocol.UnitResult) protocol.UnitResult {
	r.Outcome = protocol.Deferred
	if st.Held != nil {
		r.Held = &protocol.HeldSocket{Socket: st.Held.Endpoint, Inode: st.Held.Inode, Holder: st.Holder}
	}
	if err := s.keepGiveBack(st.Entry, st.Why); err != nil {
		r.Detail += "; and recording that it is to be given back failed: " + err.Error()
	}
	s.logStep(who, st, "defer", "deferred", st.Why)
	return r
}

// removeOnly removes the record (and root's mask), and leaves the unit
// as it is.
func (s *Service) removeOnly(ctx context.Context, who string, st plan.ReleaseStep, r protocol.UnitResult) protocol.UnitResult {
	e := st.Entry
	// Root's mask goes before the record that names it: killed between
	// the two, a record without a mask is finished by the next run (there
	// is nothing left to unmask), a mask without a record would keep the
	// unit masked with nothing to say why.
	if st.Unmask && s.unmask(e.Unit, who) {
		if err := s.Sys.Reload(ctx); err != nil {
			r.Detail += fmt.Sprintf("; daemon-reload after unmasking: %v", err)
		}
	}
	var err error
	if e.Releasing {
		err = s.Store.EndRelease(who, e.Unit)
	} else {
		err = s.Store.Remove(who, e.Unit)
	}
	if err != nil {
		r.Outcome, r.Detail = protocol.Failed, err.Error()
		return r
	}
	r.Outcome = protocol.Removed
	s.logStep(who, st, "unclaim", "done", st.Why)
	return r
}

// restart brings the unit back: the record moves aside first (the
// condition then lets the unit start), stays until the unit runs, and
// says why if it does not.
func (s *Service) restart(ctx context.Context, who string, st plan.ReleaseStep, r protocol.UnitResult) protocol.UnitResult {
	e, c := st.Entry, st.Entry.Claim
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
		r.Outcome, r.Detail = protocol.Failed, err.Error()
		return r
	}
	s.crash("after-begin-release")
	if st.Unmask && s.unmask(e.Unit, who) {
		if err := s.Sys.Reload(ctx); err != nil {
			return s.releaseFailed(r, c, fmt.Sprintf("daemon-reload after unmasking: %v", err))
		}
	}
	result, err := s.start(ctx, e.Unit, st.Each)
	s.logStep(who, st, "start", jobText(result, err), strings.Join(st.Each, " "))
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
		r.Outcome, r.Detail = protocol.Failed, err.Error()
		return r
	}
	s.logStep(who, st, "unclaim", "done", "started again")
	r.Outcome, r.Detail = protocol.Restarted, "started again, as it ran before the first claim"
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
func (s *Service) keepGiveBack(e claim.Record, why string) error {
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
func (s *Service) releaseFailed(r protocol.UnitResult, c claim.Claim, why string) protocol.UnitResult {
	c.Release.LastError = why
	if err := s.Store.UpdateRelease(c); err != nil {
		why += "; and recording that failed: " + err.Error()
	}
	r.Outcome = protocol.Failed
	r.Detail = why + "; its record stays (" + filepath.Join(s.Store.UserDir(c.User), ".releasing", c.Unit) + "), and the next release or reconcile tries again"
	return r
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
