package main

import (
	"context"
	"fmt"

	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/plan"
	"github.com/portclaim/portclaim/pkg/report"
	"github.com/portclaim/portclaim/pkg/systemd"
)

// freedUnit is a user unit whose ports a resolve freed, as read once
// after the yields: whether it holds them, what else does.
type freedUnit struct {
	w     plan.UserUnit
	holds bool
	other string // what else holds one of its ports
	err   error  // the sockets could not be read
}

// userUnits follows resolve's yields through to the user units that
// wanted the ports: it says whose each freed port is now, and outside a
// switch (the path `check` recommends) starts each unit its manager
// would start by itself (enabled, or wanted by a target, as home-manager's
// units are) that is not running, clearing a failed state first, and
// waits until it holds its ports. Inside a switch, sd-switch starts them
// next (a failed one's state cleared, or it would refuse); release checks
// that they hold their ports. The user manager is asked once, about all
// the units whose ports are free.
func (c *resolveCmd) userUnits(ctx context.Context, a *app, r *runLog, t target, v view, done map[string]bool, doc *report.ResolveDoc) {
	whose := v.check.Whose()
	var freed []freedUnit
	var free []string
	for _, w := range plan.Freed(v.plan, done) {
		f := freedUnit{w: w}
		f.holds, f.other, f.err = a.holding(t, w)
		if !f.holds && f.other == "" && f.err == nil {
			free = append(free, w.Unit)
		}
		freed = append(freed, f)
	}
	var mgr *systemd.Manager
	var units map[string]host.Unit
	var mgrErr error
	if len(free) > 0 {
		if mgr, mgrErr = systemd.User(ctx, int(t.UID)); mgrErr == nil {
			defer mgr.Close()
			units, mgrErr = mgr.Units(ctx, free, nil)
		}
	}
	for _, f := range freed {
		w := f.w
		ud := report.UserUnitDoc{Unit: w.Unit, Ports: w.Ports}
		ports := endpoint.PortList(w.Ports)
		switch {
		case f.err != nil:
			ud.Outcome, ud.Detail = "not-started", f.err.Error()
			r.warnf("%s: whether %s %s holds it is not known: %v", ports, whose, w.Unit, f.err)
		case f.holds:
			ud.Outcome, ud.Holds = "holds", true
			r.printf("%s held by %s %s", ports, whose, w.Unit)
		case f.other != "":
			ud.Outcome, ud.Detail = "not-started", f.other
			r.warnf("%s is free of the system unit, but %s holds it now, and %s %s wants it", ports, f.other, whose, w.Unit)
		case c.Switch:
			ud.Outcome, ud.Detail = "not-started", "inside a switch: the switch starts it"
			said := ""
			if mgrErr == nil {
				said = resetIfFailed(ctx, mgr, units[w.Unit])
			}
			r.printf("%s free for %s: the switch starts it next%s", ports, w.Unit, said)
		default:
			c.start(ctx, a, r, t, whose, mgr, units[w.Unit], mgrErr, w, &ud)
		}
		doc.UserUnits = append(doc.UserUnits, ud)
	}
}

// start starts one user unit whose ports are free (u, as its manager
// said), if its manager would start it by itself, and waits until it
// holds them.
func (c *resolveCmd) start(ctx context.Context, a *app, r *runLog, t target, whose string, mgr *systemd.Manager, u host.Unit, mgrErr error, w plan.UserUnit, ud *report.UserUnitDoc) {
	ports := endpoint.PortList(w.Ports)
	ctl := userCtl(a, t)
	if mgrErr != nil {
		ud.Outcome, ud.Detail = "not-started", mgrErr.Error()
		r.printf("%s free for %s; not started: %v", ports, w.Unit, mgrErr)
		return
	}
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
		if said := resetIfFailed(ctx, mgr, u); said != "" && said != resetDone {
			r.warnf("%s:%s", w.Unit, said)
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

// resetDone is what resetIfFailed says when it cleared a failed state.
const resetDone = " (its failed state reset)"

// resetIfFailed clears the failed state and start limit of u (as its
// manager said), so that a start of it, the switch's or resolve's, is
// not refused, and says so ("" when it was not failed).
func resetIfFailed(ctx context.Context, mgr *systemd.Manager, u host.Unit) string {
	if u.ActiveState != "failed" {
		return ""
	}
	if err := mgr.ResetFailed(ctx, u.Name); err != nil {
		return fmt.Sprintf(" (its failed state could not be reset: %v)", err)
	}
	return resetDone
}
