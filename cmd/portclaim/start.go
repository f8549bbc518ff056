package main

import (
	"context"
	"fmt"
	"time"

	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/gather"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/plan"
	"github.com/portclaim/portclaim/pkg/report"
	"github.com/portclaim/portclaim/pkg/systemd"
)

// wanted is one user unit whose ports a resolve freed.
type wanted struct {
	unit  string
	ports []endpoint.Endpoint
}

// freedFor lists the user units whose ports the yields in done freed, in
// the plan's order, each with its ports.
func freedFor(p plan.Plan, done map[string]bool) []wanted {
	var out []wanted
	at := map[string]int{}
	for _, it := range p.Items {
		f := it.Finding
		if it.Remedy.Who != plan.ByResolve || !done[f.SystemUnit] || f.UserUnit == "" {
			continue
		}
		i, ok := at[f.UserUnit]
		if !ok {
			i = len(out)
			at[f.UserUnit] = i
			out = append(out, wanted{unit: f.UserUnit})
		}
		if !containsEndpoint(out[i].ports, f.Want) {
			out[i].ports = append(out[i].ports, f.Want)
		}
	}
	return out
}

func containsEndpoint(es []endpoint.Endpoint, e endpoint.Endpoint) bool {
	for _, x := range es {
		if x == e {
			return true
		}
	}
	return false
}

// userUnits follows resolve's yields through to the user units that
// wanted the ports: it says whose each freed port is now, and outside a
// switch (the path `check` recommends) starts each unit its manager
// would start by itself (enabled, or wanted by a target, as home-manager's
// units are) that is not running, clearing a failed state first, and
// waits until it holds its ports. Inside a switch, sd-switch starts them
// next; release checks that they hold their ports.
func (c *resolveCmd) userUnits(ctx context.Context, a *app, r *runLog, t target, v view, done map[string]bool, doc *resolveDoc) {
	whose := v.check.Whose()
	var mgr *systemd.Manager
	var mgrErr error
	dialed := false
	defer func() {
		if mgr != nil {
			mgr.Close()
		}
	}()
	for _, w := range freedFor(v.plan, done) {
		ud := report.UserUnitDoc{Unit: w.unit, Ports: w.ports}
		ports := endpoint.PortList(w.ports)
		holds, other := a.holding(t, w)
		switch {
		case holds:
			ud.Outcome, ud.Holds = "holds", true
			r.printf("%s held by %s %s", ports, whose, w.unit)
		case other != "":
			ud.Outcome, ud.Detail = "not-started", other
			r.warnf("%s is free of the system unit, but %s holds it now, and %s %s wants it", ports, other, whose, w.unit)
		case c.Switch:
			// sd-switch starts it next; a unit that failed on the port
			// (Restart=always soon hits its start limit) would refuse
			// that start: its failed state goes first.
			if !dialed {
				dialed = true
				mgr, mgrErr = systemd.User(ctx, int(t.UID))
			}
			ud.Outcome, ud.Detail = "not-started", "inside a switch: the switch starts it"
			r.printf("%s free for %s: the switch starts it next%s", ports, w.unit, resetIfFailed(ctx, mgr, mgrErr, w.unit))
		default:
			if !dialed {
				dialed = true
				mgr, mgrErr = systemd.User(ctx, int(t.UID))
			}
			c.start(ctx, a, r, t, v, mgr, mgrErr, w, &ud)
		}
		doc.UserUnits = append(doc.UserUnits, ud)
	}
}

// resetIfFailed clears a failed user unit's state and start limit, so
// that the switch's start of it is not refused, and says so ("" when it
// was not failed, or its manager could not be asked).
func resetIfFailed(ctx context.Context, mgr *systemd.Manager, mgrErr error, unit string) string {
	if mgrErr != nil {
		return ""
	}
	units, err := mgr.Units(ctx, []string{unit}, nil)
	if err != nil || units[unit].ActiveState != "failed" {
		return ""
	}
	if err := mgr.ResetFailed(ctx, unit); err != nil {
		return fmt.Sprintf(" (its failed state could not be reset: %v)", err)
	}
	return " (its failed state reset)"
}

// start starts one user unit whose ports are free, if its manager would
// start it by itself, and waits until it holds them.
func (c *resolveCmd) start(ctx context.Context, a *app, r *runLog, t target, v view, mgr *systemd.Manager, mgrErr error, w wanted, ud *report.UserUnitDoc) {
	ports := endpoint.PortList(w.ports)
	whose := v.check.Whose()
	ctl := userCtl(a, t)
	if mgrErr != nil {
		ud.Outcome, ud.Detail = "not-started", mgrErr.Error()
		r.printf("%s free for %s; not started: %v", ports, w.unit, mgrErr)
		return
	}
	units, err := mgr.Units(ctx, []string{w.unit}, nil)
	if err != nil {
		ud.Outcome, ud.Detail = "not-started", err.Error()
		r.warnf("%s free for %s; not started: %v", ports, w.unit, err)
		return
	}
	u := units[w.unit]
	if !u.Exists() {
		ud.Outcome, ud.Detail = "not-started", "no such unit yet"
		r.printf("%s free for %s, which %s user manager does not have yet: home-manager switch creates and starts it", ports, w.unit, whose)
		return
	}
	if !u.Active() {
		by, err := mgr.StartsByItself(ctx, w.unit)
		switch {
		case err != nil:
			ud.Outcome, ud.Detail = "not-started", err.Error()
			r.warnf("%s free for %s; not started: %v", ports, w.unit, err)
			return
		case !by:
			ud.Outcome, ud.Detail = "not-started", "not enabled"
			r.printf("%s free for %s, which is not enabled, so not started: `%s start %s` starts it", ports, w.unit, ctl, w.unit)
			return
		}
		if u.ActiveState == "failed" {
			if err := mgr.ResetFailed(ctx, w.unit); err != nil {
				r.warnf("%s: reset-failed: %v", w.unit, err)
			}
		}
		a.progress("waiting up to %s for %s to start and hold %s...", c.Wait, w.unit, ports)
		res, err := mgr.Start(ctx, w.unit, c.Wait)
		if err != nil || res != "done" && res != "" {
			why := fmt.Sprintf("its start job ended %q", res)
			if err != nil {
				why = err.Error()
			}
			ud.Outcome, ud.Detail = "failed", why
			r.warnf("failed   %s: %s; `%s status %s` says why", w.unit, why, ctl, w.unit)
			return
		}
		ud.Outcome = "started"
	} else {
		ud.Outcome = "running"
	}
	if a.waitHolding(ctx, t, w, c.Wait) {
		ud.Holds = true
		if ud.Outcome == "started" {
			r.printf("started  %s: it holds %s", w.unit, ports)
		} else {
			r.printf("%s held by %s %s", ports, whose, w.unit)
		}
		return
	}
	ud.Detail = fmt.Sprintf("it does not hold %s after %s", ports, c.Wait)
	r.warnf("%s %s: %s; `%s status %s` says why", ud.Outcome, w.unit, ud.Detail, ctl, w.unit)
}

// userCtl is the systemctl that reaches t's user manager.
func userCtl(a *app, t target) string {
	if t.Root(a) {
		return fmt.Sprintf("systemctl --user -M %s@", t.Name)
	}
	return "systemctl --user"
}

// holding reports whether w's unit holds every one of its ports now, and
// what else holds one, if anything does ("" when they are free).
func (a *app) holding(t target, w wanted) (bool, string) {
	ref := host.UnitRef{User: true, UserUID: t.UID, Name: w.unit}
	all := true
	for _, p := range w.ports {
		held, err := gather.Who(p.Port, p.Proto, []host.UnitRef{ref}, a.places)
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
func (a *app) waitHolding(ctx context.Context, t target, w wanted, wait time.Duration) bool {
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
