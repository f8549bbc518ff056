package main

import (
	"context"
	"strings"

	"github.com/portclaim/portclaim/pkg/attribute"
	"github.com/portclaim/portclaim/pkg/claim"
	"github.com/portclaim/portclaim/pkg/claimstore"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/manifest"
	"github.com/portclaim/portclaim/pkg/places"
	"github.com/portclaim/portclaim/pkg/plan"
	"github.com/portclaim/portclaim/pkg/protocol"
	"github.com/portclaim/portclaim/pkg/report"
)

type releaseCmd struct {
	actFlags
	All bool `help:"Give back every claim, declared or not."`
}

func (c *releaseCmd) Run(a *app) error {
	t, err := a.target(c.User, true)
	if err != nil {
		return err
	}
	m, source, err := a.loadManifest(c.Manifest, t)
	if err != nil && !c.All {
		return err
	}
	r := c.runLog(a)
	doc := report.ReleaseDoc{User: t.Name, Manifest: source, DryRun: c.DryRun, UserUnits: []report.UserUnitDoc{}, Notes: []string{}, Errors: []string{}}
	pol, _ := places.LoadPolicy(a.places.PolicyPath)
	entries, err := claimstore.Store{Dir: places.ClaimsDir(pol, a.places.ServedNote)}.List(t.Name)
	if err != nil {
		r.errorf("%v", protocol.Unchanged(err))
		return a.finish(r, t, source, "release", strictCode(m, exitConflicts), 0, doc)
	}
	if c.Switch && !c.DryRun {
		ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
		c.verify(ctx, a, r, t, entries, m, &doc)
		cancel()
	}
	units := plan.GiveBack(entries, m, c.All)
	if len(units) == 0 {
		// The common switch: nothing claimed, or all still declared.
		r.verbosef("%s: nothing to give back (%d claim%s, all still declared)", t.Name, len(entries), plural(len(entries)))
		return a.finish(r, t, source, "release", exitOK, 0, doc)
	}
	if c.DryRun {
		r.printf("would ask %s to give back %s for %s", a.actorName(t), strings.Join(units, ", "), t.Name)
		return a.finish(r, t, source, "release", exitOK, 0, doc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	a.progress("waiting up to %s for each of %s to come back...", c.Wait, strings.Join(units, ", "))
	act, log, closeAct, err := a.actorFor(ctx, t, pol, c.Wait)
	if err != nil {
		r.errorf("%v", err)
		return a.finish(r, t, source, "release", strictCode(m, exitConflicts), len(units), doc)
	}
	defer closeAct()
	res, err := act.Release(ctx, protocol.ReleaseRequest{Units: units})
	doc.Notes = append(doc.Notes, r.unrecorded(log)...)
	if err != nil {
		r.errorf("%v", err)
		return a.finish(r, t, source, "release", strictCode(m, exitConflicts), len(units), doc)
	}
	a.nameOwnHolders(&res, t)
	doc.Release = &res
	for _, line := range report.ReleaseLines(t.Name, res) {
		r.printf("%s", line)
	}
	left := report.Left(res.Units)
	code := exitOK
	if left > 0 {
		code = strictCode(m, exitConflicts)
	}
	return a.finish(r, t, source, "release", code, left, doc)
}

// nameOwnHolders names the holder of each of the user's own sockets a
// deferred release waits for as `portclaim who` does: the broker names
// the unit alone (it reads no user's open files; the process it could
// only guess), and the user can read their own.
func (a *app) nameOwnHolders(res *protocol.ReleaseResult, t target) {
	for i := range res.Units {
		u := &res.Units[i]
		h := u.Held
		if h == nil || h.Holder == "" {
			continue
		}
		held, err := attribute.Who(h.Socket.Port, h.Socket.Proto, nil, a.places)
		if err != nil {
			continue
		}
		for _, x := range held {
			if x.Socket.Inode == h.Inode && x.Holder.Known() && x.Holder.UID == t.UID {
				u.Detail = strings.Replace(u.Detail, h.Holder, x.Holder.Describe(a.names.Of), 1)
			}
		}
	}
}

// verify is release's part of a switch: sd-switch has started the user
// units by now, so each port still claimed for one is checked to be held
// by it; one that is not is reported (the claim keeps the system unit
// down for nothing until it does). A port still free is waited for, up to
// --wait: a unit that failed on it may be between restarts. It reads the
// socket table only when there are claims.
func (c *releaseCmd) verify(ctx context.Context, a *app, r *runLog, t target, entries []claim.Record, m manifest.Manifest, doc *report.ReleaseDoc) {
	whose := t.whose(a)
	for _, w := range plan.Claimed(entries, m) {
		ud := report.UserUnitDoc{Unit: w.Unit, Ports: w.Ports}
		holds, other, err := a.holding(t, w)
		ports := endpoint.PortList(w.Ports)
		if !holds && other == "" && err == nil {
			a.progress("waiting up to %s for %s to hold %s...", c.Wait, w.Unit, ports)
			holds = a.waitHolding(ctx, t, w, c.Wait)
		}
		switch {
		case err != nil:
			ud.Outcome, ud.Detail = "not-holding", err.Error()
			r.warnf("%s is claimed for %s %s; whether it holds it is not known: %v", ports, whose, w.Unit, err)
		case holds:
			ud.Outcome, ud.Holds = "holds", true
			r.verbosef("%s held by %s %s", ports, whose, w.Unit)
		case other != "":
			ud.Outcome, ud.Detail = "not-holding", other+" holds it"
			r.warnf("%s is claimed for %s %s, but %s holds it", ports, whose, w.Unit, other)
		default:
			ud.Outcome, ud.Detail = "not-holding", "free"
			r.warnf("%s is claimed for %s %s, which does not hold it after the switch: `%s status %s` says why", ports, whose, w.Unit, userCtl(a, t), w.Unit)
		}
		doc.UserUnits = append(doc.UserUnits, ud)
	}
}
