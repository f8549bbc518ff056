package main

import (
	"context"
	"slices"
	"strings"

	"github.com/portclaim/portclaim/pkg/broker"
	"github.com/portclaim/portclaim/pkg/claimstore"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/gather"
	"github.com/portclaim/portclaim/pkg/manifest"
	"github.com/portclaim/portclaim/pkg/report"
	"github.com/portclaim/portclaim/pkg/unitname"
	"github.com/portclaim/portclaim/pkg/yield"
)

type releaseCmd struct {
	actFlags
	All bool `help:"Give back every claim, declared or not."`
}

type releaseDoc struct {
	User     string               `json:"user"`
	Manifest report.Manifest      `json:"manifest"`
	DryRun   bool                 `json:"dryRun"`
	Release  *yield.ReleaseResult `json:"release"`
	// UserUnits, inside a switch: whether each user unit holds the ports
	// claimed for it.
	UserUnits []report.UserUnitDoc `json:"userUnits"`
	Notes     []string             `json:"notes"`
	Errors    []string             `json:"errors"`
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
	r := &runLog{a: a, json: c.JSON, verbose: c.Verbose, dryRun: c.DryRun}
	doc := releaseDoc{User: t.Name, Manifest: source, DryRun: c.DryRun, UserUnits: []report.UserUnitDoc{}, Notes: []string{}, Errors: []string{}}
	pol, _ := gather.LoadPolicy(a.places.PolicyPath)
	claimsDir := gather.ClaimsDir(pol, a.places.ServedNote)
	entries, err := claimstore.Store{Dir: claimsDir}.List(t.Name)
	if err != nil {
		r.errorf("%v; nothing was changed", err)
		return a.finish(r, t, source, "release", strictCode(m, exitConflicts), 0, doc, c.JSON)
	}
	if c.Switch && !c.DryRun {
		ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
		c.verify(ctx, a, r, t, entries, m, &doc)
		cancel()
	}
	units := giveBack(entries, m, c.All)
	if len(units) == 0 {
		// The common switch: nothing claimed, or all still declared.
		r.verbosef("%s: nothing to give back (%d claim%s, all still declared)", t.Name, len(entries), plural(len(entries)))
		return a.finish(r, t, source, "release", exitOK, 0, doc, c.JSON)
	}
	if c.DryRun {
		r.printf("would ask %s to give back %s for %s", actorOf(t, a), strings.Join(units, ", "), t.Name)
		return a.finish(r, t, source, "release", exitOK, 0, doc, c.JSON)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	req := yield.ReleaseRequest{Units: units}
	a.progress("waiting up to %s for each of %s to come back...", c.Wait, strings.Join(units, ", "))
	var res yield.ReleaseResult
	if t.Root(a) {
		svc, closeBus, err := a.rootService(ctx, claimsDir, c.Wait)
		if err == nil {
			defer closeBus()
			res, err = svc.Release(ctx, t.Name, req)
			doc.Notes = append(doc.Notes, r.unrecorded(svc.Log)...)
		}
		if err != nil {
			r.errorf("%s", failedSays(err, true))
			return a.finish(r, t, source, "release", strictCode(m, exitConflicts), len(units), doc, c.JSON)
		}
	} else {
		resp, err := a.askBroker(ctx, "release", t.Name, broker.Request{Op: broker.OpRelease, Release: &req, WaitMS: c.Wait.Milliseconds()})
		if err != nil {
			r.errorf("%s", failedSays(err, false))
			return a.finish(r, t, source, "release", strictCode(m, exitConflicts), len(units), doc, c.JSON)
		}
		res = *resp.Release
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
	return a.finish(r, t, source, "release", code, left, doc, c.JSON)
}

// nameOwnHolders names the holder of each of the user's own sockets a
// deferred release waits for as `portclaim who` does: the broker names
// the unit alone (it reads no user's open files; the process it could
// only guess), and the user can read their own.
func (a *app) nameOwnHolders(res *yield.ReleaseResult, t target) {
	for i := range res.Units {
		u := &res.Units[i]
		h := u.Held
		if h == nil || h.Holder == "" {
			continue
		}
		held, err := gather.Who(h.Socket.Port, h.Socket.Proto, nil, a.places)
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

// giveBack lists the claimed units to release: every one with all, else
// those no service of the manifest names any more (by unit, not by
// service name: renaming a service in home.nix must not give its port
// away), with releases under way among them, and those asked for back
// before and deferred (the manifest may still name them: `release --all`
// while their port was still the user's). A unit stopped with another
// goes with it, and a socket with its service. (A release under way of a
// unit the manifest names again is resolve's to take back.)
func giveBack(entries []claimstore.Entry, m manifest.Manifest, all bool) []string {
	var out []string
	for _, e := range entries {
		if e.Problem != "" && !all {
			continue // reported by status; nothing to ask for
		}
		if all || !declared(m, e) || e.Problem == "" && e.Claim.GiveBack != nil {
			if !slices.Contains(out, e.Unit) {
				out = append(out, e.Unit)
			}
		}
	}
	return out
}

func declared(m manifest.Manifest, e claimstore.Entry) bool {
	for _, svc := range m.Services {
		for _, u := range svc.SystemUnits {
			if u == e.Unit || u == e.Claim.With || unitname.SocketFor(u) == e.Unit {
				return true
			}
		}
	}
	return false
}

// verify is release's part of a switch: sd-switch has started the user
// units by now, so each port still claimed for one is checked to be held
// by it; one that is not is reported (the claim keeps the system unit
// down for nothing until it does). A port still free is waited for, up to
// --wait: a unit that failed on it may be between restarts. It reads the
// socket table only when there are claims.
func (c *releaseCmd) verify(ctx context.Context, a *app, r *runLog, t target, entries []claimstore.Entry, m manifest.Manifest, doc *releaseDoc) {
	var ws []wanted
	for _, svc := range m.Services {
		claimed := false
		for _, e := range entries {
			if e.Problem == "" && !e.Releasing && slices.ContainsFunc(svc.SystemUnits, func(u string) bool {
				return u == e.Unit || u == e.Claim.With || unitname.SocketFor(u) == e.Unit
			}) {
				claimed = true
			}
		}
		if claimed && len(svc.UserUnits) > 0 {
			ws = append(ws, wanted{unit: svc.UserUnits[0], ports: svc.Ports})
		}
	}
	whose := "your"
	if t.Root(a) {
		whose = t.Name + "'s"
	}
	for _, w := range ws {
		ud := report.UserUnitDoc{Unit: w.unit, Ports: w.ports}
		holds, other := a.holding(t, w)
		ports := endpoint.PortList(w.ports)
		if !holds && other == "" {
			a.progress("waiting up to %s for %s to hold %s...", c.Wait, w.unit, ports)
			holds = a.waitHolding(ctx, t, w, c.Wait)
		}
		switch {
		case holds:
			ud.Outcome, ud.Holds = "holds", true
			r.verbosef("%s held by %s %s", ports, whose, w.unit)
		case other != "":
			ud.Outcome, ud.Detail = "not-holding", other+" holds it"
			r.warnf("%s is claimed for %s %s, but %s holds it", ports, whose, w.unit, other)
		default:
			ud.Outcome, ud.Detail = "not-holding", "free"
			r.warnf("%s is claimed for %s %s, which does not hold it after the switch: `%s status %s` says why", ports, whose, w.unit, userCtl(a, t), w.unit)
		}
		doc.UserUnits = append(doc.UserUnits, ud)
	}
}
