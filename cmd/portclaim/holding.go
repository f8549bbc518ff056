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

// holding reports whether w's unit holds every one of its ports now, and
// what else holds one, if anything does ("" when they are free).
func (a *app) holding(t target, w plan.UserUnit) (bool, string) {
	ref := host.UnitRef{User: true, UserUID: t.UID, Name: w.Unit}
	all := true
	for _, p := range w.Ports {
		held, err := attribute.Who(p.Port, p.Proto, []host.UnitRef{ref}, a.places)
		if err != nil {
			return false, ""
		}
		mine := false
		for _, h := range held {
			if !endpoint.Overlap(p, h.Socket.Endpoint) {
				continue
			}
			if h.Holder.Unit == ref {
				mine = true
				continue
			}
			return false, report.Who(h.Holder, a.names.Of)
		}
		all = all && mine
	}
	return all, ""
}

// waitHolding waits up to wait until w's unit holds its ports.
func (a *app) waitHolding(ctx context.Context, t target, w plan.UserUnit, wait time.Duration) bool {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if holds, _ := a.holding(t, w); holds {
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
