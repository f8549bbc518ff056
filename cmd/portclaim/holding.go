package main

import (
	"context"
	"time"

	"github.com/portclaim/portclaim/pkg/attribute"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/plan"
	"github.com/portclaim/portclaim/pkg/report"
)

// holding reports whether w's unit holds every one of its ports now,
// and what else holds one, if anything does ("" when they are free), in
// one read of the socket tables.
func (a *app) holding(t target, w plan.UserUnit) (bool, string, error) {
	ref := host.UnitRef{User: true, UserUID: t.UID, Name: w.Unit}
	qs := make([]attribute.Query, len(w.Ports))
	for i, p := range w.Ports {
		qs[i] = attribute.Query{Port: p.Port, Proto: p.Proto, Expected: []host.UnitRef{ref}}
	}
	held, err := attribute.New(a.places).Who(qs)
	if err != nil {
		return false, "", err
	}
	all := true
	for i, p := range w.Ports {
		mine := false
		for _, h := range held[i] {
			if !endpoint.Overlap(p, h.Socket.Endpoint) {
				continue
			}
			if h.Holder.Unit == ref {
				mine = true
				continue
			}
			return false, report.Who(h.Holder, a.names.Of), nil
		}
		all = all && mine
	}
	return all, "", nil
}

// waitHolding waits up to wait until w's unit holds its ports.
func (a *app) waitHolding(ctx context.Context, t target, w plan.UserUnit, wait time.Duration) bool {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if holds, _, _ := a.holding(t, w); holds {
			return true
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// managerOf names the manager of a holder's unit: "system", or "user
// alice".
func (a *app) managerOf(u host.UnitRef) string {
	if u.User {
		return "user " + a.names.Of(u.UserUID)
	}
	return "system"
}
