package main

import (
	"bufio"
	"context"
	"strings"

	"github.com/portclaim/portclaim/pkg/actionlog"
	"github.com/portclaim/portclaim/pkg/conflict"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/plan"
	"github.com/portclaim/portclaim/pkg/protocol"
	"github.com/portclaim/portclaim/pkg/report"
)

type resolveCmd struct {
	actFlags
	Yes bool `help:"Act without asking, even when the manifest says autoResolve = false, or as root for a user."`
}

func (c *resolveCmd) Run(a *app) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	t, m, src, err := a.lookFor(c.User, c.Manifest, true)
	if err != nil {
		return err
	}
	ask, cannot := plan.Consent(plan.Asking{User: t.Name, Root: t.Root(a), Yes: c.Yes, DryRun: c.DryRun, AutoResolve: m.AutoResolve, Terminal: a.stdinTTY})
	v := a.look(ctx, m, src, t, looking{declined: cannot != ""})
	r := c.runLog(a)
	doc := report.ResolveDoc{User: t.Name, Manifest: src, DryRun: c.DryRun, Yields: []protocol.YieldResult{}, UserUnits: []report.UserUnitDoc{},
		Left: []report.Conflict{}, Notes: nonNil(v.check.Notes), Errors: nonNil(v.check.Errors)}
	if c.Verbose && !r.json {
		report.Text(a.stdout, v.check)
	}
	conflicts := conflict.Conflicts(v.check.Findings)
	if len(v.check.Errors) > 0 {
		r.errorf("nothing was changed: %s", strings.Join(v.check.Errors, "; "))
		return a.finish(r, t, src, "resolve", strictCode(m, exitConflicts), conflicts, doc)
	}
	if c.Verbose {
		for _, n := range v.check.Notes {
			r.notef("%s", n)
		}
	}
	if len(v.plan.Unasked) > 0 {
		r.warnf("%s", cannot)
	}
	done := map[string]bool{} // system units whose yield freed their ports
	if len(v.plan.Yields) > 0 {
		done = c.yield(ctx, a, r, t, v, &doc, ask)
	}
	// What is left: every conflict whose unit did not yield.
	left := 0
	shown := map[string]string{}
	for _, it := range v.plan.Items {
		if it.Remedy.Who == plan.ByResolve && done[it.Finding.SystemUnit] {
			continue
		}
		left++
		doc.Left = append(doc.Left, report.ConflictDoc(it))
		f := it.Finding
		lines := v.check.ConflictLines(it, 2, shown)
		r.warnf("%s %s [%s]\n  %s", f.Want.PortProto(), f.Service, report.Label(it.Remedy.Who), strings.Join(lines, "\n  "))
	}
	if len(done) > 0 && !c.DryRun {
		c.userUnits(ctx, a, r, t, v, done, &doc)
	}
	if left == 0 && conflicts == 0 {
		r.verbosef("%s", v.check.PortsNow())
	}
	code := exitOK
	if left > 0 {
		code = strictCode(m, exitConflicts)
	}
	return a.finish(r, t, src, "resolve", code, left, doc)
}

// yield asks for each planned yield (asking a person first when ask)
// and says what happened; it returns the system units whose ports are
// free now.
func (c *resolveCmd) yield(ctx context.Context, a *app, r *runLog, t target, v view, doc *report.ResolveDoc, ask bool) map[string]bool {
	done := map[string]bool{}
	var in *bufio.Reader
	if ask {
		in = bufio.NewReader(a.stdin)
	}
	var act protocol.Actor
	for _, y := range v.plan.Yields {
		what := strings.Join(y.Units, " and ")
		if c.DryRun {
			r.printf("would ask %s to yield %s to %s for %s: claim, stop, wait up to %s for the ports", a.actorName(t), what, t.Name, endpoint.PortList(y.Ports), c.Wait)
			continue
		}
		if in != nil && !a.ask(in, v.check.YieldQuestion(y)) {
			r.printf("skipped  %s: not confirmed; nothing changed", what)
			continue
		}
		a.progress("waiting up to %s for %s to stop and %s to be free...", c.Wait, what, endpoint.PortList(y.Ports))
		if act == nil {
			var log *actionlog.Log
			var closeAct func()
			var err error
			if act, log, closeAct, err = a.actorFor(ctx, t, v.snap.Policy, c.Wait); err != nil {
				r.errorf("%v", err)
				return done
			}
			defer func() { doc.Notes = append(doc.Notes, r.unrecorded(log)...) }()
			defer closeAct()
		}
		res, err := act.Yield(ctx, protocol.YieldRequest{Service: y.Service, Units: y.Units, Ports: y.Ports})
		if err != nil {
			r.errorf("%s: %v", what, err)
			continue
		}
		doc.Yields = append(doc.Yields, res)
		lines := report.YieldLines(t.Name, res)
		if res.Refused != nil {
			r.warnf("%s", strings.Join(lines, "\n"))
		}
		for _, line := range lines {
			if res.Refused == nil {
				r.printf("%s", line)
			}
		}
		for _, w := range res.Warnings {
			r.warnf("%s", w)
		}
		if res.Refused == nil && res.PortsFree && report.Left(res.Units) == 0 {
			done[y.Units[len(y.Units)-1]] = true
		}
	}
	return done
}
