package main

import (
	"context"
	"time"

	"github.com/portclaim/portclaim/pkg/actionlog"
	"github.com/portclaim/portclaim/pkg/broker"
	"github.com/portclaim/portclaim/pkg/manifest"
	"github.com/portclaim/portclaim/pkg/places"
	"github.com/portclaim/portclaim/pkg/policy"
	"github.com/portclaim/portclaim/pkg/protocol"
	"github.com/portclaim/portclaim/pkg/report"
	"github.com/portclaim/portclaim/pkg/yield"
)

// actFlags are shared by resolve and release: home-manager's activation
// passes --manifest and --switch, and --dry-run/--verbose under
// DRY_RUN/VERBOSE.
type actFlags struct {
	manifestFlag `embed:""`
	DryRun       bool `name:"dry-run" help:"Say what would be done, change nothing."`
	Verbose      bool `short:"v" help:"Also say what needs nothing done."`
	formatFlag   `embed:""`
	User         string        `help:"Act for this user's claims, with root's authority (root only; root must name one)." placeholder:"NAME"`
	Wait         time.Duration `default:"10s" help:"How long to wait for each stop or start, and for ports to change hands."`
	Timeout      time.Duration `default:"60s" help:"The longest the whole run may take."`
	Switch       bool          `name:"switch" help:"Run as a step of home-manager switch (its activation passes it): resolve leaves starting your user units to the switch; release checks that each holds its claimed ports."`
}

// runLog is the run's voice: what it says, said or kept for the JSON
// document and the last-run record.
func (f actFlags) runLog(a *app) *runLog {
	return &runLog{a: a, json: f.asJSON(), verbose: f.Verbose, dryRun: f.DryRun}
}

// actorFor is who acts for t: root itself, in this process, on its own
// authority (root mode), or the broker, on the policy's. Root's service
// connects to the system bus, so callers get it when they first need
// it: a dry run, or a yield not confirmed, connects to nothing. Root
// acts on the claims directory pol names (without one, the one served
// last). log is the journal root's actions go to (nil for the broker,
// which keeps its own); done ends the connection.
func (a *app) actorFor(ctx context.Context, t target, pol *policy.Policy, wait time.Duration) (act protocol.Actor, log *actionlog.Log, done func(), err error) {
	if !t.Root(a) {
		return broker.Client{Socket: a.places.BrokerSocket, User: t.Name, Wait: wait}, nil, func() {}, nil
	}
	dir := places.ClaimsDir(pol, a.places.ServedNote)
	svc, closeBus, err := yield.New(ctx, yield.Config{Places: a.places, Dir: dir, Root: true, Wait: wait, Log: actionlog.Journal()})
	if err != nil {
		return nil, nil, nil, err
	}
	return svc.ActFor(t.Name, t.UID), svc.Log, closeBus, nil
}

// actorName names who acts: the broker, or root itself.
func (a *app) actorName(t target) string {
	if t.Root(a) {
		return "systemd (as root)"
	}
	return "the broker"
}

// strictCode is code under strict = true, else 0: home-manager's
// activation is one `set -eu` script, and portclaim must not break it.
func strictCode(m manifest.Manifest, code int) int {
	if m.Strict {
		return code
	}
	return exitOK
}

// finish prints the JSON document (the text was said as the run went),
// records the run for `portclaim status`, and exits with code.
func (a *app) finish(r *runLog, t target, src report.Manifest, command string, code, left int, doc any) error {
	if r.json {
		if err := report.WriteJSON(a.stdout, doc); err != nil {
			return err
		}
	}
	if !r.dryRun {
		a.recordRun(r, t, src, command, code, left)
	}
	return quietExit(code)
}
