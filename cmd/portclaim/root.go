package main

import (
	"context"
	"fmt"
	"os/signal"
	"sort"
	"syscall"
	"time"

	"github.com/portclaim/portclaim/pkg/actionlog"
	"github.com/portclaim/portclaim/pkg/broker"
	"github.com/portclaim/portclaim/pkg/claimstore"
	"github.com/portclaim/portclaim/pkg/gather"
	"github.com/portclaim/portclaim/pkg/plan"
	"github.com/portclaim/portclaim/pkg/report"
	"github.com/portclaim/portclaim/pkg/systemd"
	"github.com/portclaim/portclaim/pkg/yield"
)

type brokerCmd struct {
	Idle time.Duration `default:"30s" help:"Exit after this long without a connection (systemd starts it again on the next)."`
	Wait time.Duration `default:"10s" help:"The longest a request may wait for each job and for ports."`
}

func (c *brokerCmd) Run(a *app) error {
	if a.euid != 0 {
		return fail(exitBadInput, "systemd starts it as root from portclaim.socket (services.portclaim.enable = true;)", "portclaim broker runs as root")
	}
	ln, err := broker.Activated()
	if err != nil {
		return fail(exitEnv, "systemd starts it from portclaim.socket, which hands it the socket", "portclaim broker: %v", err)
	}
	// systemd keeps the socket when the broker exits idle; closing our
	// copy must not unlink it.
	ln.SetUnlinkOnClose(false)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	srv := &broker.Server{Places: a.places, Wait: c.Wait, Idle: c.Idle, Log: actionlog.Journal()}
	return srv.Serve(ctx, ln)
}

type reconcileCmd struct {
	Wait    time.Duration `default:"10s" help:"How long to wait for each start."`
	Timeout time.Duration `default:"5m" help:"The longest the whole run may take."`
	JSON    bool          `name:"json" help:"Print JSON (schema in the README)."`
	Verbose bool          `short:"v" help:"Also say when there is nothing to do."`
	// MoveClaims is what portclaim-move-claims.service runs, early at
	// boot and on a switch, before the units the claims keep down start.
	MoveClaims bool `name:"move-claims" help:"Only move the claims into the policy's claimsDir from the directory served before, and note it (no system bus, no user lookups)."`
}

func (c *reconcileCmd) Run(a *app) error {
	if a.euid != 0 {
		return fail(exitBadInput, "it runs as root, at boot and when the policy changes (portclaim-reconcile.service)", "portclaim reconcile runs as root")
	}
	doc := report.ReconcileDoc{Users: []report.ReconcileUser{}, Notes: []string{}, Errors: []string{}}
	pol, problem, missing := gather.ReadPolicy(a.places.PolicyPath)
	switch {
	case pol == nil && !missing:
		// Not a policy that allows nothing: giving back every claim would
		// start the units under the users' containers.
		return fail(exitEnv, "fix the policy (a NixOS module newer than this portclaim? update portclaim) and run `systemctl restart portclaim-reconcile.service`; `portclaim status` shows the claims kept",
			"%s: it cannot be trusted, so every claim is kept and nothing is given back", problem)
	case pol == nil && c.MoveClaims:
		return nil // nothing to move claims into
	case pol == nil:
		doc.Notes = append(doc.Notes, problem+": every condition claim is given back")
		if !c.JSON {
			a.notef("%s: every condition claim is given back", problem)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	dir := gather.ClaimsDir(pol, a.places.ServedNote)
	if pol != nil && (c.MoveClaims || dir != pol.ClaimsDir) {
		// services.portclaim.claimsDir changed: every record goes there
		// before anything is given back from it.
		n, err := claimstore.Store{Dir: pol.ClaimsDir}.MoveTo(ctx, a.places.ServedNote)
		if n > 0 {
			fmt.Fprintf(a.stdout, "moved %d claim record%s from %s to %s\n", n, plural(n), dir, pol.ClaimsDir)
		}
		if err != nil {
			return fail(exitEnv, "root must move or remove what is left (`portclaim status` shows it); then `systemctl restart portclaim-reconcile.service`",
				"the claims are still in %s, not in the policy's %s: %v; nothing is given back until they are", dir, pol.ClaimsDir, err)
		}
		if c.MoveClaims {
			return nil
		}
		dir = pol.ClaimsDir
	}
	sys, closeBus, err := systemd.SystemOutliving(ctx)
	if err != nil {
		return fail(exitEnv, "", "%v; nothing was changed", err)
	}
	defer closeBus()
	svc := &yield.Service{Store: claimstore.Store{Dir: dir}, Authority: plan.Authority{Policy: pol}, Sys: sys,
		Places: a.places, Note: a.places.ServedNote, Wait: c.Wait, Log: actionlog.Journal()}
	results, err := svc.Reconcile(ctx)
	for _, p := range svc.Log.Problems {
		doc.Notes = append(doc.Notes, p)
		if !c.JSON {
			a.warnf("%s", p) // the actions matter more than their record
		}
	}
	// What was done for the users it reached is said even when another
	// user's claims failed: reconcile goes on past them.
	users := make([]string, 0, len(results))
	left := 0
	for u, res := range results {
		users = append(users, u)
		left += report.Left(res.Units)
	}
	sort.Strings(users)
	for _, u := range users {
		res := results[u]
		if res.Units == nil {
			res.Units = []yield.UnitResult{}
		}
		doc.Users = append(doc.Users, report.ReconcileUser{User: u, Release: res})
	}
	if err != nil {
		doc.Errors = append(doc.Errors, err.Error())
	}
	if c.JSON {
		if werr := report.WriteJSON(a.stdout, doc); werr != nil {
			return werr
		}
	} else {
		said := false
		for _, u := range users {
			for _, line := range report.ReleaseLines(u, results[u]) {
				said = true
				fmt.Fprintf(a.stdout, "%s: %s\n", u, line)
			}
		}
		if !said && err == nil && c.Verbose {
			fmt.Fprintln(a.stdout, "nothing to do: every claim is one the policy allows, and no release is under way")
		}
	}
	if err != nil {
		return fail(exitEnv, "the next boot or policy change runs reconcile again; `portclaim status` shows what is left", "%v", err)
	}
	if left > 0 {
		return quietExit(exitConflicts)
	}
	return nil
}
