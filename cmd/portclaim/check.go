package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/portclaim/portclaim/pkg/conflict"
	"github.com/portclaim/portclaim/pkg/gather"
	"github.com/portclaim/portclaim/pkg/report"
)

type checkCmd struct {
	manifestFlag `embed:""`
	JSON         bool          `name:"json" help:"Print JSON (schema in the README)."`
	User         string        `help:"Check this user's claims (root only; root without it: every user's)." placeholder:"NAME"`
	Timeout      time.Duration `default:"30s" help:"The longest the whole check may take."`
}

// manifestFlag is --manifest of check, resolve and release.
type manifestFlag struct {
	Manifest string `help:"Manifest file (JSON; - for standard input). Default: the one home-manager links to $XDG_CONFIG_HOME/portclaim/manifest.json, else the built-in map." placeholder:"FILE" type:"path"`
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
	if c.JSON {
		if err := report.WriteJSON(a.stdout, report.Document(v.check)); err != nil {
			return err
		}
	} else {
		report.Text(a.stdout, v.check)
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
	pol, problem := gather.LoadPolicy(a.places.PolicyPath)
	sh := gather.Share(a.places, pol, problem)
	defer sh.Close()
	doc := report.UsersDoc{Users: []report.CheckDoc{}, Notes: []string{}}
	code := exitOK
	users := a.knownUsers()
	if len(users) == 0 {
		doc.Notes = append(doc.Notes, "no user has claims, and the policy names none: `sudo portclaim check --user NAME` checks one user's manifest")
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
		if c.JSON {
			doc.Users = append(doc.Users, report.Document(v.check))
			continue
		}
		if printed {
			fmt.Fprintln(a.stdout)
		}
		printed = true
		report.Text(a.stdout, v.check)
		a.sayNotes(v.check)
	}
	if c.JSON {
		return writeThen(a.stdout, doc, code)
	}
	for _, n := range doc.Notes {
		a.notef("%s", n)
	}
	return quietExit(code)
}

// writeThen writes a JSON document, then ends with code.
func writeThen(w io.Writer, doc any, code int) error {
	if err := report.WriteJSON(w, doc); err != nil {
		return err
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
