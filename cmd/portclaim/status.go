package main

import (
	"context"
	"io"
	"time"

	"github.com/portclaim/portclaim/pkg/attribute"
	"github.com/portclaim/portclaim/pkg/claim"
	"github.com/portclaim/portclaim/pkg/claimstore"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/gather"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/places"
	"github.com/portclaim/portclaim/pkg/policy"
	"github.com/portclaim/portclaim/pkg/report"
)

type statusCmd struct {
	User    string        `help:"Show this user's claims (root only; default: you, or for root everyone's)." placeholder:"NAME"`
	JSON    bool          `name:"json" help:"Print JSON (schema in the README); the same as --format json."`
	Format  string        `enum:"text,json,prometheus" default:"text" help:"text, json, or prometheus (metrics for node_exporter's textfile collector; as root, every user's, with each user's conflicts)."`
	Output  string        `help:"Write to FILE, atomically, instead of standard output (for the textfile collector)." placeholder:"FILE" type:"path"`
	Timeout time.Duration `default:"60s" help:"The longest the whole run may take (prometheus checks every user's manifest)."`
}

// lookup is one user's target, looked up once a run, or why not.
type lookup struct {
	t   target
	err error
}

// Run reads everything status shows (the policy, the claims, who holds
// their ports, the last runs and, for the metrics, each user's
// conflicts), then writes it: nothing is read while it is written.
func (c *statusCmd) Run(a *app) error {
	pol, problem, missing := places.ReadPolicy(a.places.PolicyPath)
	// One run shares the policy, what it read of the processes, and the
	// system manager's connection.
	sh := gather.Share(a.places, pol, problem)
	defer sh.Close()
	if c.JSON && c.Format == "prometheus" {
		return fail(exitBadInput, "give one: --json (the same as --format json), or --format prometheus", "--json and --format prometheus ask for two formats")
	}
	if c.JSON {
		c.Format = "json"
	}
	if err := outputDir(c.Output); err != nil {
		return err
	}
	doc := report.StatusDoc{PolicyProblem: problem, PolicyUntrusted: pol == nil && !missing,
		Broker: sh.Broker() == host.BrokerListening, BrokerState: sh.Broker(), Users: []report.StatusUser{}}
	if pol != nil {
		doc.Policy = &report.StatusPolicy{Path: pol.Path, ClaimsDir: pol.ClaimsDir, Yield: pol.Yield}
	}
	// During a move, or one stopped half way, records are in both.
	stores := a.claimStores(pol)
	if pol == nil || stores[0].Dir != pol.ClaimsDir {
		doc.ClaimsIn = stores[0].Dir
	}
	users, found, err := c.users(a, stores, pol)
	if err != nil {
		return err
	}
	for _, u := range users {
		l, ok := found[u]
		if !ok {
			l.t, l.err = a.target(u, false)
			found[u] = l
		}
		doc.Users = append(doc.Users, a.statusOf(stores, pol, u, l))
	}
	a.holdersOf(sh, doc.Users)
	if c.Format == "prometheus" {
		ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
		defer cancel()
		metrics := a.metrics(ctx, sh, doc, found, pol != nil)
		return a.writeOut(c.Output, func(w io.Writer) error { return report.Prometheus(w, metrics) })
	}
	return a.writeOut(c.Output, func(w io.Writer) error {
		return render(w, c.Format == "json", doc, func(w io.Writer) { report.StatusText(w, doc, a.euid == 0, a.places.BrokerSocket) })
	})
}

// users are whose claims status shows: the one asked for (a user: their
// own), else (root) everyone's with claims in stores and, for the
// metrics, the users the policy names, who may have claims to come.
func (c *statusCmd) users(a *app, stores []claimstore.Store, pol *policy.Policy) ([]string, map[string]lookup, error) {
	found := map[string]lookup{}
	if c.User != "" || a.euid != 0 {
		t, err := a.target(c.User, false)
		if err != nil {
			return nil, nil, err
		}
		found[t.Name] = lookup{t: t}
		return []string{t.Name}, found, nil
	}
	withPolicy := pol
	if c.Format != "prometheus" {
		withPolicy = nil
	}
	users, err := knownUsers(stores, withPolicy)
	if err != nil {
		return nil, nil, fail(exitEnv, "", "%v", err)
	}
	return users, found, nil
}

// metrics is the fleet view: the claims and last runs status read, and
// each user's conflicts from a check of their manifest.
func (a *app) metrics(ctx context.Context, sh *gather.Shared, doc report.StatusDoc, found map[string]lookup, policyOK bool) report.Metrics {
	m := report.StatusMetrics(doc, policyOK)
	for i := range m.Users {
		um := &m.Users[i]
		l := found[um.User]
		if l.err != nil {
			continue
		}
		if man, src, err := a.loadManifest("", l.t); err == nil && src.Kind != report.ManifestBuiltIn {
			v := a.look(ctx, man, src, l.t, looking{shared: sh})
			um.Checked = len(v.check.Errors) == 0
			um.Conflicts = report.ConflictMetrics(v.plan.Items)
		}
	}
	return m
}

// statusOf reads a user's claims, in stores, and last run; holdersOf
// adds who holds the claimed ports.
func (a *app) statusOf(stores []claimstore.Store, pol *policy.Policy, name string, l lookup) report.StatusUser {
	su := report.StatusUser{User: name, Claims: []report.StatusClaim{}}
	for _, store := range stores {
		a.claimsOf(&su, store, pol)
	}
	su.LastRun, su.LastRunProblem = a.lastRunOf(l)
	return su
}

func (a *app) claimsOf(su *report.StatusUser, store claimstore.Store, pol *policy.Policy) {
	entries, err := store.List(su.User)
	if err != nil {
		su.Claims = append(su.Claims, report.StatusClaim{Problem: err.Error(), Holders: []report.HeldDoc{}})
	}
	for _, e := range entries {
		sc := report.StatusClaim{Unit: e.Unit, Releasing: e.Releasing, Problem: e.Problem, Ports: []endpoint.Endpoint{}, Holders: []report.HeldDoc{}}
		if e.Problem == "" {
			cl := e.Claim
			at := cl.ClaimedAt
			sc.Service, sc.Ports, sc.ClaimedAt, sc.Method, sc.Prior, sc.With = cl.Service, cl.Ports, &at, cl.Method, cl.Prior.ActiveState, cl.With
			// A record not yet moved to the policy's directory is not
			// where its unit's condition looks.
			sc.KeptDown = !e.Releasing && keptDown(a.places, cl.Method, e.Unit) && (pol == nil || store.Dir == pol.ClaimsDir || cl.Method != claim.ByCondition)
			if cl.Release != nil {
				sc.LastError = cl.Release.LastError
			}
			if cl.GiveBack != nil {
				sc.GiveBack = cl.GiveBack.Why
			}
		}
		su.Claims = append(su.Claims, sc)
	}
}

// holdersOf says who holds each claimed port now, from one read of the
// socket tables for all of them.
func (a *app) holdersOf(sh *gather.Shared, users []report.StatusUser) {
	var qs []attribute.Query
	for _, su := range users {
		for _, c := range su.Claims {
			for _, p := range c.Ports {
				qs = append(qs, attribute.Query{Port: p.Port, Proto: p.Proto, Expected: []host.UnitRef{{Name: c.Unit}}})
			}
		}
	}
	held, err := sh.Who(qs)
	i := 0
	for _, su := range users {
		for ci := range su.Claims {
			c := &su.Claims[ci]
			if err != nil && c.Problem == "" {
				c.HoldersProblem = err.Error()
			}
			for range c.Ports {
				if err == nil {
					for _, h := range held[i] {
						c.Holders = append(c.Holders, report.HeldDocOf(h.Socket, a.managerOf(h.Holder.Unit), h.Holder, a.names.Of))
					}
				}
				i++
			}
		}
	}
}

// keptDown reports whether what keeps a claimed unit down is in place: a
// mask still linked, or a condition (rendered by the NixOS module for
// every unit the policy lists).
func keptDown(at places.Places, method, unit string) bool {
	switch method {
	case claim.ByCondition:
		return true
	case claim.ByTransientMask:
		return at.Masked(unit)
	}
	return false
}
