package yield

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/portclaim/portclaim/pkg/actionlog"
	"github.com/portclaim/portclaim/pkg/claim"
	"github.com/portclaim/portclaim/pkg/plan"
	"github.com/portclaim/portclaim/pkg/protocol"
)

// Reconcile gives back what the policy no longer allows (a user removed,
// a unit no longer listed) and finishes every release under way. It runs
// at boot and on every nixos-rebuild switch that changes the policy. A
// user whose records cannot be read or given back does not stop the
// others': every user is done, and every error returned, joined.
func (s *Service) Reconcile(ctx context.Context) (map[string]protocol.ReleaseResult, error) {
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
	out := map[string]protocol.ReleaseResult{}
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

func (s *Service) reconcileUser(ctx context.Context, u string, lookupsReady func() bool) (protocol.ReleaseResult, error) {
	var res protocol.ReleaseResult
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
	var stale, unfinished []claim.Record
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
		entries []claim.Record
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
