package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/portclaim/portclaim/pkg/attribute"
	"github.com/portclaim/portclaim/pkg/conflict"
	"github.com/portclaim/portclaim/pkg/gather"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/manifest"
	"github.com/portclaim/portclaim/pkg/places"
	"github.com/portclaim/portclaim/pkg/report"
)

type checkCmd struct {
	manifestFlag `embed:""`
	formatFlag   `embed:""`
	User         string        `help:"Check this user's claims (root only; root without it: every user's)." placeholder:"NAME"`
	Timeout      time.Duration `default:"30s" help:"The longest the whole check may take."`
}

func (c *checkCmd) Run(a *app) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	if a.euid == 0 && (c.User == "" || c.User == "root") {
		if c.Manifest != "" {
			return fail(exitBadInput, "`sudo portclaim check` without --manifest checks every user's own",
				"as root, name the user whose claims --manifest holds: --user NAME (root has no claims of its own)")
		}
		return c.everyone(ctx, a)
	}
	t, m, src, err := a.lookFor(c.User, c.Manifest, false)
	if err != nil {
		return err
	}
	v := a.look(ctx, m, src, t, looking{})
	if err := render(a.stdout, c.asJSON(), report.Document(v.check), func(w io.Writer) { report.Text(w, v.check) }); err != nil {
		return err
	}
	if !c.asJSON() {
		a.sayNotes(v.check)
	}
	return quietExit(checkCode(v.check))
}

// checkCode is a check's exit code: 3 when it could not see, 1 on
// conflicts.
func checkCode(c report.Check) int {
	switch {
	case len(c.Errors) > 0:
		return exitEnv
	case conflict.Conflicts(c.Findings) > 0:
		return exitConflicts
	}
	return exitOK
}

// everyone is root's check without --user: each user root looks after
// (with claims, or in the policy), checked against the manifest in their
// home, as `check --user NAME` would; root has no claims of its own.
func (c *checkCmd) everyone(ctx context.Context, a *app) error {
	pol, problem := places.LoadPolicy(a.places.PolicyPath)
	sh := gather.Share(a.places, pol, problem)
	defer sh.Close()
	doc := report.UsersDoc{Users: []report.CheckDoc{}, Notes: []string{}}
	code := exitOK
	users, _ := knownUsers(a.claimStores(pol), pol) // none read: no one's to check
	if len(users) == 0 {
		// The main job still: what holds the ports the known services'
		// user units would want, yielding to no one (root has no claims).
		ports, err := a.machinePorts(sh)
		if err != nil {
			return fail(exitEnv, "", "%v", err)
		}
		doc.Machine = ports
		doc.Notes = append(doc.Notes, "`sudo portclaim check --user NAME` checks a user's manifest against them, with what to do")
		if !c.asJSON() {
			report.MachineText(a.stdout, ports)
		}
	}
	printed := false
	for _, u := range users {
		t, err := a.target(u, false)
		if err != nil {
			doc.Notes = append(doc.Notes, fmt.Sprintf("%s: %v", u, err))
			continue
		}
		m, src, err := a.loadManifest("", t)
		switch {
		case err != nil:
			doc.Notes = append(doc.Notes, fmt.Sprintf("%s: %v", u, err))
			code = max(code, exitBadInput)
			continue
		case src.Kind == report.ManifestBuiltIn:
			doc.Notes = append(doc.Notes, fmt.Sprintf("%s has no manifest at %s: not checked; `portclaim status` shows %s's claims",
				u, a.manifestPath(t), u))
			continue
		}
		v := a.look(ctx, m, src, t, looking{shared: sh})
		if n := checkCode(v.check); n != exitOK && (code == exitOK || n == exitEnv) {
			code = n
		}
		if c.asJSON() {
			doc.Users = append(doc.Users, report.Document(v.check))
			continue
		}
		// Each user's report as soon as it is read: a check of many
		// users shows progress.
		if printed {
			fmt.Fprintln(a.stdout)
		}
		printed = true
		report.Text(a.stdout, v.check)
		a.sayNotes(v.check)
	}
	if c.asJSON() {
		return renderThen(a.stdout, true, doc, nil, code)
	}
	for _, n := range doc.Notes {
		a.notef("%s", n)
	}
	return quietExit(code)
}

// sayNotes puts a check's notes and errors on stderr, after the report.
func (a *app) sayNotes(c report.Check) {
	for _, n := range c.Notes {
		a.notef("%s", n)
	}
	for _, e := range c.Errors {
		a.errorf(e, "")
	}
}

// machinePorts is what holds each port of the built-in map, read in one
// pass over the socket tables, each holder named as `who` names it.
func (a *app) machinePorts(sh *gather.Shared) ([]report.MachinePort, error) {
	m := manifest.Default()
	var qs []attribute.Query
	var out []report.MachinePort
	for _, svc := range m.Services {
		for _, p := range svc.Ports {
			var expected []host.UnitRef
			for _, u := range svc.SystemUnits {
				expected = append(expected, host.UnitRef{Name: u})
			}
			qs = append(qs, attribute.Query{Port: p.Port, Proto: p.Proto, Expected: expected})
			out = append(out, report.MachinePort{Service: svc.Name,
				WhoDoc: report.WhoDoc{Port: p.Port, Protocol: string(p.Proto), Sockets: []report.WhoSocket{}}})
		}
	}
	held, err := sh.Who(qs)
	if err != nil {
		return nil, err
	}
	for i, hs := range held {
		for _, h := range hs {
			out[i].Sockets = append(out[i].Sockets, report.WhoSocket{Protocol: string(h.Socket.Proto), Address: h.Socket.Endpoint.String(),
				Says: report.Who(h.Holder, a.names.Of), Holder: report.HolderDoc(a.managerOf(h.Holder.Unit), h.Holder.Unit.Name, h.Holder)})
		}
	}
	return out, nil
}
