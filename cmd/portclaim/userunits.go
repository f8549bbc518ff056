package main

import (
	"context"
	"fmt"

	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/plan"
	"github.com/portclaim/portclaim/pkg/report"
	"github.com/portclaim/portclaim/pkg/systemd"
)

// userUnits follows resolve's yields through to the user units that
// wanted the ports: it says whose each freed port is now, and outside a
// switch (the path `check` recommends) starts each unit its manager
// would start by itself (enabled, or wanted by a target, as home-manager's
// units are) that is not running, clearing a failed state first, and
// waits until it holds its ports. Inside a switch, sd-switch starts them
// next; release checks that they hold their ports.
func (c *resolveCmd) userUnits(ctx context.Context, a *app, r *runLog, t target, v view, done map[string]bool, doc *report.ResolveDoc) {
	whose := v.check.Whose()
	var mgr *systemd.Manager
	var mgrErr error
	dialed := false
	defer func() {
		if mgr != nil {
			mgr.Close()
		}
	}()
	for _, w := range plan.Freed(v.plan, done) {
		ud := report.UserUnitDoc{Unit: w.Unit, Ports: w.Ports}
		ports := endpoint.PortList(w.Ports)
		holds, other := a.holding(t, w)
		switch {
		case holds:
			ud.Outcome, ud.Holds = "holds", true
			r.printf("%s held by %s %s", ports, whose, w.Unit)
		case other != "":
			ud.Outcome, ud.Detail = "not-started", other
			r.warnf("%s is free of the system unit, but %s holds it now, and %s %s wants it", ports, other, whose, w.Unit)
		case c.Switch:
			// sd-switch starts it next; a unit that failed on the port
			// (Restart=always soon hits its start limit) would refuse
			// that start: its failed state goes first.
			if !dialed {
				dialed = true
				mgr, mgrErr = systemd.User(ctx, int(t.UID))
			}
			ud.Outcome, ud.Detail = "not-started", "inside a switch: the switch starts it"
			r.printf("%s free for %s: the switch starts it next%s", ports, w.Unit, resetIfFailed(ctx, mgr, mgrErr, w.Unit))
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

// start starts one user unit whose ports are free, if its manager would
// start it by itself, and waits until it holds them.
func (c *resolveCmd) start(ctx context.Context, a *app, r *runLog, t target, v view, mgr *systemd.Manager, mgrErr error, w plan.UserUnit, ud *report.UserUnitDoc) {
	ports := endpoint.PortList(w.Ports)
	whose := v.check.Whose()
	ctl := userCtl(a, t)
	if mgrErr != nil {
		ud.Outcome, ud.Detail = "not-started", mgrErr.Error()
		r.printf("%s free for %s; not started: %v", ports, w.Unit, mgrErr)
		return
	}
	units, err := mgr.Units(ctx, []string{w.Unit}, nil)
	if err != nil {
		ud.Outcome, ud.Detail = "not-started", err.Error()
		r.warnf("%s free for %s; not started: %v", ports, w.Unit, err)
		return
	}
	u := units[w.Unit]
	if !u.Exists() {
		ud.Outcome, ud.Detail = "not-started", "no such unit yet"
		r.printf("%s free for %s, which %s user manager does not have yet: home-manager switch creates and starts it", ports, w.Unit, whose)
		return
	}
	if !u.Active() {
		by, err := mgr.StartsByItself(ctx, w.Unit)
		switch {
		case err != nil:
			ud.Outcome, ud.Detail = "not-started", err.Error()
			r.warnf("%s free for %s; not started: %v", ports, w.Unit, err)
			return
		case !by:
			ud.Outcome, ud.Detail = "not-started", "not enabled"
			r.printf("%s free for %s, which is not enabled, so not started: `%s start %s` starts it", ports, w.Unit, ctl, w.Unit)
			return
		}
		if u.ActiveState == "failed" {
			if err := mgr.ResetFailed(ctx, w.Unit); err != nil {
				r.warnf("%s: reset-failed: %v", w.Unit, err)
			}
		}
		a.progress("waiting up to %s for %s to start and hold %s...", c.Wait, w.Unit, ports)
		res, err := mgr.Start(ctx, w.Unit, c.Wait)
		if err != nil || res != "done" && res != "" {
			why := fmt.Sprintf("its start job ended %q", res)
			if err != nil {
				why = err.Error()
			}
			ud.Outcome, ud.Detail = "failed", why
			r.warnf("failed   %s: %s; `%s status %s` says why", w.Unit, why, ctl, w.Unit)
			return
		}
		ud.Outcome = "started"
	} else {
		ud.Outcome = "running"
	}
	if a.waitHolding(ctx, t, w, c.Wait) {
		ud.Holds = true
		if ud.Outcome == "started" {
			r.printf("started  %s: it holds %s", w.Unit, ports)
		} else {
			r.printf("%s held by %s %s", ports, whose, w.Unit)
		}
		return
	}
	ud.Detail = fmt.Sprintf("it does not hold %s after %s", ports, c.Wait)
	r.warnf("%s %s: %s; `%s status %s` says why", ud.Outcome, w.Unit, ud.Detail, ctl, w.Unit)
}

// userCtl is the systemctl that reaches t's user manager.
func userCtl(a *app, t target) string {
	if t.Root(a) {
		return fmt.Sprintf("systemctl --user -M %s@", t.Name)
	}
	return "systemctl --user"
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
