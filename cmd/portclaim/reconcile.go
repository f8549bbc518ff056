package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/portclaim/portclaim/pkg/actionlog"
	"github.com/portclaim/portclaim/pkg/claimstore"
	"github.com/portclaim/portclaim/pkg/places"
	"github.com/portclaim/portclaim/pkg/protocol"
	"github.com/portclaim/portclaim/pkg/report"
	"github.com/portclaim/portclaim/pkg/yield"
)

type reconcileCmd struct {
	Wait       time.Duration `default:"10s" help:"How long to wait for each start."`
	Timeout    time.Duration `default:"5m" help:"The longest the whole run may take."`
	formatFlag `embed:""`
	Verbose    bool `short:"v" help:"Also say when there is nothing to do."`
	// MoveClaims is what portclaim-move-claims.service runs, early at
	// boot and on a switch, before the units the claims keep down start.
	MoveClaims bool `name:"move-claims" help:"Only move the claims into the policy's claimsDir from the directory served before, and note it (no system bus, no user lookups)."`
}

func (c *reconcileCmd) Run(a *app) error {
	if a.euid != 0 {
		return fail(exitBadInput, "it runs as root, at boot and when the policy changes (portclaim-reconcile.service)", "portclaim reconcile runs as root")
	}
	doc := report.ReconcileDoc{Users: []report.ReconcileUser{}, Notes: []string{}, Errors: []string{}}
	pol, problem, missing := places.ReadPolicy(a.places.PolicyPath)
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
		if !c.asJSON() {
			a.notef("%s: every condition claim is given back", problem)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	dir := places.ClaimsDir(pol, a.places.ServedNote)
	if pol != nil && (c.MoveClaims || dir != pol.ClaimsDir) {
		// services.portclaim.claimsDir changed: every record goes there
		// before anything is given back from it.
		n, err := claimstore.Store{Dir: pol.ClaimsDir}.MoveTo(ctx, a.places.ServedNote)
		if n > 0 {
			moved := fmt.Sprintf("moved %d claim record%s from %s to %s", n, plural(n), dir, pol.ClaimsDir)
			doc.Notes = append(doc.Notes, moved)
			if !c.asJSON() {
				fmt.Fprintln(a.stdout, moved)
			}
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
	svc, closeBus, err := yield.New(ctx, yield.Config{Places: a.places, Dir: dir, Policy: pol, Wait: c.Wait, Log: actionlog.Journal()})
	if err != nil {
		return fail(exitEnv, "", "%v", err)
	}
	defer closeBus()
	results, err := svc.Reconcile(ctx)
	for _, p := range svc.Log.Problems {
		doc.Notes = append(doc.Notes, p)
		if !c.asJSON() {
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
			res.Units = []protocol.UnitResult{}
		}
		doc.Users = append(doc.Users, report.ReconcileUser{User: u, Release: res})
	}
	if err != nil {
		doc.Errors = append(doc.Errors, err.Error())
	}
	if werr := render(a.stdout, c.asJSON(), doc, func(w io.Writer) { c.text(w, doc, err == nil) }); werr != nil {
		return werr
	}
	if err != nil {
		return fail(exitEnv, "the next boot or policy change runs reconcile again; `portclaim status` shows what is left", "%v", err)
	}
	if left > 0 {
		return quietExit(exitConflicts)
	}
	return nil
}

// text writes what reconcile did, a line per unit, each with its user;
// with --verbose, that there was nothing to do (and nothing failed: ok).
func (c *reconcileCmd) text(w io.Writer, doc report.ReconcileDoc, ok bool) {
	said := false
	for _, u := range doc.Users {
		for _, line := range report.ReleaseLines(u.User, u.Release) {
			said = true
			fmt.Fprintf(w, "%s: %s\n", u.User, line)
		}
	}
	if !said && ok && c.Verbose {
		fmt.Fprintln(w, "nothing to do: every claim is one the policy allows, and no release is under way")
	}
}
