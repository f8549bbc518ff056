package main

import (
	"context"

	"github.com/portclaim/portclaim/pkg/conflict"
	"github.com/portclaim/portclaim/pkg/gather"
	"github.com/portclaim/portclaim/pkg/manifest"
	"github.com/portclaim/portclaim/pkg/places"
	"github.com/portclaim/portclaim/pkg/plan"
	"github.com/portclaim/portclaim/pkg/report"
)

// view is one look at the machine for a manifest, decided and planned.
type view struct {
	snap  gather.Snapshot
	plan  plan.Plan
	check report.Check // its Findings are every claimed port's verdict
}

// looking is how a look plans: for a resolve that may not act for want
// of a terminal (declined), and with what it shares with other looks of
// the run (nil: nothing).
type looking struct {
	declined bool
	shared   *gather.Shared
}

// look reads the machine for t's manifest m, decides who holds each
// claimed port, and plans what to do about each conflict.
func (a *app) look(ctx context.Context, m manifest.Manifest, src report.Manifest, t target, how looking) view {
	sh := how.shared
	if sh == nil {
		pol, problem := places.LoadPolicy(a.places.PolicyPath)
		sh = gather.Share(a.places, pol, problem)
		defer sh.Close()
	}
	// Read, decide once, then read what the verdicts call for.
	snap := sh.Look(ctx, m, t.UID, t.Name)
	findings := conflict.Classify(snap.ConflictInput(m, t.UID, a.names.Of))
	sh.Follow(ctx, &snap, m, t.UID, findings)
	p := plan.Make(plan.Input{Manifest: m, Findings: findings, User: t.Name, Root: t.Root(a), Policy: snap.Policy,
		PolicyProblem: snap.PolicyProblem, Broker: snap.Broker, BrokerSocket: a.places.BrokerSocket, Declined: how.declined,
		System: snap.System, UserUnits: snap.UserUnits, Sockets: snap.Sockets})
	notes := append(append(a.builtInNote(src, t), snap.Notes...), m.Notes...)
	return view{snap: snap, plan: p, check: report.Check{User: t.Name, Root: t.Root(a), Manifest: src, Findings: findings,
		Items: p.Items, UserUnits: snap.UserUnits, Notes: notes, Errors: snap.Broken, DBusCalls: snap.DBusCalls, NameOf: a.names.Of}}
}
