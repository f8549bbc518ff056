package main

import (
	"context"
	"time"

	"github.com/portclaim/portclaim/pkg/conflict"
	"github.com/portclaim/portclaim/pkg/report"
)

type checkCmd struct {
	manifestFlag `embed:""`
	JSON         bool          `name:"json" help:"Print JSON (schema in the README)."`
	User         string        `help:"Check this user's claims (root only; default: you)." placeholder:"NAME"`
	Timeout      time.Duration `default:"30s" help:"The longest the whole check may take."`
}

// manifestFlag is --manifest of check, resolve and release.
type manifestFlag struct {
	Manifest string `help:"Manifest file (JSON). Default: the one home-manager links to $XDG_CONFIG_HOME/portclaim/manifest.json, else the built-in map." placeholder:"FILE" type:"path"`
}

func (c *checkCmd) Run(a *app) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	t, _, source, v, err := a.lookFor(ctx, c.User, c.Manifest, false)
	if err != nil {
		return err
	}
	if c.JSON {
		if err := report.WriteJSON(a.stdout, report.Document(v.check)); err != nil {
			return err
		}
	} else {
		a.announce(source, t)
		report.Text(a.stdout, v.check)
		a.sayNotes(v.check)
	}
	switch {
	case len(v.check.Errors) > 0:
		return quietExit(exitEnv)
	case conflict.Conflicts(v.check.Findings) > 0:
		return quietExit(exitConflicts)
	}
	return nil
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
