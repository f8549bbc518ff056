package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/portclaim/portclaim/pkg/claim"
	"github.com/portclaim/portclaim/pkg/claimstore"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/gather"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/lastrun"
	"github.com/portclaim/portclaim/pkg/policy"
	"github.com/portclaim/portclaim/pkg/report"
	"github.com/portclaim/portclaim/pkg/safeopen"
)

type statusCmd struct {
	User    string        `help:"Show this user's claims (root only; default: you, or for root everyone's)." placeholder:"NAME"`
	JSON    bool          `name:"json" help:"Print JSON (schema in the README); the same as --format json."`
	Format  string        `enum:"text,json,prometheus" default:"text" help:"text, json, or prometheus (metrics for node_exporter's textfile collector; as root, every user's, with each user's conflicts)."`
	Output  string        `help:"Write to FILE, atomically, instead of standard output (for the textfile collector)." placeholder:"FILE" type:"path"`
	Timeout time.Duration `default:"60s" help:"The longest the whole run may take (prometheus checks every user's manifest)."`
}

// statusDoc is status's JSON document.
type statusDoc struct {
	Policy        *statusPolicy `json:"policy"`
	PolicyProblem string        `json:"policyProblem,omitempty"`
	// PolicyUntrusted: a policy is there but cannot be believed; every
	// claim stands as it is until it is fixed.
	PolicyUntrusted bool `json:"policyUntrusted,omitempty"`
	// ClaimsIn is where the claims are read from when that is not the
	// policy's claimsDir: the directory served before, while its records
	// wait to be moved (or without a trusted policy).
	ClaimsIn string `json:"claimsIn,omitempty"`
	// Broker: the broker's socket listens; BrokerState says more:
	// "listening", "stopped" (its file is there, nothing listens) or
	// "missing".
	Broker      bool         `json:"broker"`
	BrokerState host.Broker  `json:"brokerState"`
	Users       []statusUser `json:"users"`
}

type statusPolicy struct {
	Path      string              `json:"path"`
	ClaimsDir string              `json:"claimsDir"`
	Yield     map[string][]string `json:"yield"`
}

type statusUser struct {
	User    string          `json:"user"`
	Claims  []statusClaim   `json:"claims"`
	LastRun *lastrun.Record `json:"lastRun,omitempty"`
	// LastRunProblem says why the last run is not shown.
	LastRunProblem string `json:"lastRunProblem,omitempty"`
}

type statusClaim struct {
	Unit      string              `json:"unit"`
	Service   string              `json:"service,omitempty"`
	Ports     []endpoint.Endpoint `json:"ports"`
	ClaimedAt *time.Time          `json:"claimedAt,omitempty"`
	Method    string              `json:"method,omitempty"`
	// KeptDown: what the claim promises holds now (a mask in place, or
	// the unit's condition, which the NixOS module renders).
	KeptDown  bool   `json:"keptDown"`
	Prior     string `json:"prior,omitempty"`
	With      string `json:"with,omitempty"`
	Releasing bool   `json:"releasing,omitempty"`
	// GiveBack says why a release the user asked for waits; the claim
	// keeps the unit down meanwhile.
	GiveBack  string `json:"giveBack,omitempty"`
	LastError string `json:"lastError,omitempty"`
	Problem   string `json:"problem,omitempty"`
	// Holders are the sockets on the claimed ports now (none: free);
	// HoldersProblem says why they could not be read.
	Holders        []report.HeldDoc `json:"holders"`
	HoldersProblem string           `json:"holdersProblem,omitempty"`
}

// lookup is one user's target, looked up once a run, or why not.
type lookup struct {
	t   target
	err error
}

func (c *statusCmd) Run(a *app) error {
	pol, problem, missing := gather.ReadPolicy(a.places.PolicyPath)
	// One run shares the policy, the reads of the socket tables and the
	// processes, and the system manager's connection.
	sh := gather.Share(a.places, pol, problem)
	defer sh.Close()
	if c.JSON && c.Format == "prometheus" {
		return fail(exitBadInput, "give one: --json (the same as --format json), or --format prometheus", "--json and --format prometheus ask for two formats")
	}
	doc := statusDoc{PolicyProblem: problem, PolicyUntrusted: pol == nil && !missing,
		Broker: sh.Broker() == host.BrokerListening, BrokerState: sh.Broker(), Users: []statusUser{}}
	if pol != nil {
		doc.Policy = &statusPolicy{Path: pol.Path, ClaimsDir: pol.ClaimsDir, Yield: pol.Yield}
	}
	store := claimstore.Store{Dir: gather.ClaimsDir(pol, a.places.ServedNote)}
	stores := []claimstore.Store{store}
	if pol == nil || store.Dir != pol.ClaimsDir {
		doc.ClaimsIn = store.Dir
	}
	if pol != nil && store.Dir != pol.ClaimsDir {
		// A move under way, or stopped half way: some records are there.
		stores = append(stores, claimstore.Store{Dir: pol.ClaimsDir})
	}
	var users []string
	found := map[string]lookup{}
	switch {
	case c.User != "", a.euid != 0:
		t, err := a.target(c.User, false)
		if err != nil {
			return err
		}
		users = []string{t.Name}
		found[t.Name] = lookup{t: t}
	default:
		for _, st := range stores {
			more, err := st.Users()
			if err != nil {
				return fail(exitEnv, "", "%v", err)
			}
			for _, u := range more {
				if !slices.Contains(users, u) {
					users = append(users, u)
				}
			}
		}
	}
	if c.JSON {
		c.Format = "json"
	}
	if c.Format == "prometheus" && a.euid == 0 && c.User == "" && pol != nil {
		// Users the policy names may have claims to come.
		for _, us := range pol.Yield {
			for _, u := range us {
				if !slices.Contains(users, u) {
					users = append(users, u)
				}
			}
		}
		sort.Strings(users)
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
	return a.writeOut(c.Output, func(w io.Writer) error {
		switch c.Format {
		case "json":
			return report.WriteJSON(w, doc)
		case "prometheus":
			ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
			defer cancel()
			return report.Prometheus(w, a.metrics(ctx, sh, doc, found, pol != nil))
		}
		a.statusText(w, doc)
		return nil
	})
}

// writeOut writes to standard output, or atomically to path: a reader
// (node_exporter) sees the old file or the whole new one.
func (a *app) writeOut(path string, write func(io.Writer) error) error {
	if path == "" {
		return write(a.stdout)
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fail(exitBadInput, fmt.Sprintf("create it first (mkdir -p %s), or give --output a file in a directory that exists", dir),
			"--output %s: the directory %s does not exist; nothing was written", path, dir)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fail(exitEnv, "", "writing %s: %v", path, err)
	}
	defer os.Remove(tmp.Name())
	err = write(tmp)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fail(exitEnv, "", "writing %s: %v", path, err)
	}
	return nil
}

// metrics is the fleet view: the claims and last runs status read, and
// each user's conflicts from a check of their manifest.
func (a *app) metrics(ctx context.Context, sh *gather.Shared, doc statusDoc, found map[string]lookup, policyOK bool) report.Metrics {
	m := report.Metrics{PolicyOK: policyOK, PolicyUntrusted: doc.PolicyUntrusted, Broker: doc.Broker}
	for _, su := range doc.Users {
		um := report.UserMetrics{User: su.User, LastRun: su.LastRun}
		for _, c := range su.Claims {
			um.Claims = append(um.Claims, report.ClaimMetric{Unit: c.Unit, Method: c.Method, KeptDown: c.KeptDown,
				Releasing: c.Releasing, AskedBack: c.GiveBack != "", Unreadable: c.Problem != ""})
		}
		if l := found[su.User]; l.err == nil {
			if man, src, err := a.loadManifest("", l.t); err == nil && src.Kind != report.ManifestBuiltIn {
				v := a.look(ctx, man, src, l.t, looking{shared: sh})
				um.Checked = len(v.check.Errors) == 0
				for _, it := range v.plan.Items {
					f := it.Finding
					um.Conflicts = append(um.Conflicts, report.ConflictMetric{Kind: string(f.Kind), Who: string(it.Remedy.Who), Port: f.Want.Port, Protocol: string(f.Want.Proto)})
				}
			}
		}
		m.Users = append(m.Users, um)
	}
	return m
}

// statusOf reads a user's claims, in stores, and last run; holdersOf
// adds who holds the claimed ports.
func (a *app) statusOf(stores []claimstore.Store, pol *policy.Policy, name string, l lookup) statusUser {
	su := statusUser{User: name, Claims: []statusClaim{}}
	for _, store := range stores {
		a.claimsOf(&su, store, pol)
	}
	su.LastRun, su.LastRunProblem = a.lastRunOf(l)
	return su
}

func (a *app) claimsOf(su *statusUser, store claimstore.Store, pol *policy.Policy) {
	entries, err := store.List(su.User)
	if err != nil {
		su.Claims = append(su.Claims, statusClaim{Problem: err.Error(), Holders: []report.HeldDoc{}})
	}
	for _, e := range entries {
		sc := statusClaim{Unit: e.Unit, Releasing: e.Releasing, Problem: e.Problem, Ports: []endpoint.Endpoint{}, Holders: []report.HeldDoc{}}
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
func (a *app) holdersOf(sh *gather.Shared, users []statusUser) {
	var qs []gather.Query
	for _, su := range users {
		for _, c := range su.Claims {
			for _, p := range c.Ports {
				qs = append(qs, gather.Query{Port: p.Port, Proto: p.Proto, Expected: []host.UnitRef{{Name: c.Unit}}})
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
						manager := "system"
						if h.Holder.Unit.User {
							manager = "user " + a.names.Of(h.Holder.Unit.UserUID)
						}
						c.Holders = append(c.Holders, report.HeldDocOf(h.Socket, manager, h.Holder, a.names.Of))
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
func keptDown(at gather.Places, method, unit string) bool {
	switch method {
	case claim.ByCondition:
		return true
	case claim.ByTransientMask:
		return at.Masked(unit)
	}
	return false
}

// lastRunOf reads a user's last run: the newer of their own record (in
// their home: as root, through safeopen) and root's record of its runs
// for them.
func (a *app) lastRunOf(l lookup) (*lastrun.Record, string) {
	if l.err != nil {
		return nil, l.err.Error()
	}
	own, problem := a.ownRun(l.t)
	newest := lastrun.Newest(own, a.rootRun(l.t))
	if newest != nil {
		problem = ""
	}
	return newest, problem
}

// ownRun reads the record the user writes in their state directory.
func (a *app) ownRun(t target) (*lastrun.Record, string) {
	var path string
	var data []byte
	var err error
	if t.Self && a.euid != 0 {
		path = filepath.Join(lastrun.Dir(a.getenv), lastrun.File)
		data, err = safeopen.ReadFile(path, lastrun.MaxSize)
	} else {
		path = filepath.Join(t.Home, ".local", "state", "portclaim", lastrun.File)
		data, err = safeopen.UserFile(path, t.UID, lastrun.MaxSize)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "" // no run recorded yet
	}
	if err != nil {
		return nil, err.Error()
	}
	r, err := lastrun.Decode(data)
	if err != nil {
		return nil, fmt.Sprintf("%s: %v", path, err)
	}
	return &r, ""
}

func (a *app) statusText(w io.Writer, doc statusDoc) {
	switch {
	case doc.PolicyUntrusted:
		fmt.Fprintf(w, "policy: %s: it cannot be trusted, so every claim stays as it is (reconcile gives nothing back, the broker does nothing) until root fixes it\n", doc.PolicyProblem)
	case doc.Policy == nil:
		fmt.Fprintf(w, "policy: %s\n", doc.PolicyProblem)
	default:
		fmt.Fprintf(w, "policy: %s, claims in %s\n", doc.Policy.Path, doc.Policy.ClaimsDir)
		var units []string
		for u := range doc.Policy.Yield {
			units = append(units, u)
		}
		sort.Strings(units)
		for _, u := range units {
			if a.euid == 0 || slices.ContainsFunc(doc.Users, func(su statusUser) bool { return slices.Contains(doc.Policy.Yield[u], su.User) }) {
				fmt.Fprintf(w, "  may yield: %s to %s\n", u, strings.Join(doc.Policy.Yield[u], ", "))
			}
		}
	}
	if doc.Policy != nil && doc.ClaimsIn != "" {
		fmt.Fprintf(w, "claims: still in %s, the claims directory served before, until portclaim-move-claims.service moves them to %s (`journalctl -u portclaim-move-claims` says why not)\n", doc.ClaimsIn, doc.Policy.ClaimsDir)
	}
	switch doc.BrokerState {
	case host.BrokerListening:
		fmt.Fprintf(w, "broker: listening at %s\n", a.places.BrokerSocket)
	case host.BrokerStopped:
		fmt.Fprintf(w, "broker: not listening (%s is there, but portclaim.socket is stopped); users' resolve changes nothing\n", a.places.BrokerSocket)
		fmt.Fprintf(w, "  see why: systemctl status portclaim.socket\n  start it, as root: sudo systemctl start portclaim.socket\n")
	default:
		fmt.Fprintf(w, "broker: not installed (no %s); users' resolve changes nothing\n", a.places.BrokerSocket)
		fmt.Fprintf(w, "  enable portclaim's NixOS module, in configuration.nix: services.portclaim.enable = true;\n")
	}
	total := 0
	for _, su := range doc.Users {
		for _, c := range su.Claims {
			total++
			if c.Problem != "" {
				fmt.Fprintf(w, "claim of %s on %s: %s (it keeps the unit down; root must repair or remove it)\n", su.User, c.Unit, c.Problem)
				continue
			}
			state := "kept down by " + report.MethodText(c.Method)
			if !c.KeptDown {
				state = "not kept down (" + report.MethodText(c.Method) + ")"
			}
			if c.Releasing {
				state = "being released, the unit not back yet"
				if c.LastError != "" {
					state += ": " + c.LastError
				}
			}
			if c.GiveBack != "" && !c.Releasing {
				state += "; asked back, waiting: " + c.GiveBack + "; the next `portclaim release`, home-manager switch or boot gives it back once that is over"
			}
			with := ""
			if c.With != "" {
				with = ", stopped with " + c.With
			}
			fmt.Fprintf(w, "claim: %s yields to %s (service %s%s, since %s; before: %s)\n",
				c.Unit, su.User, c.Service, with, c.ClaimedAt.Local().Format(time.RFC3339), c.Prior)
			fmt.Fprintf(w, "  %s\n", state)
			for _, line := range holderLines(c) {
				fmt.Fprintf(w, "  %s\n", line)
			}
		}
		if su.LastRun != nil {
			lr := su.LastRun
			by := ""
			if lr.By != "" {
				by = " (by " + lr.By + ")"
			}
			fmt.Fprintf(w, "last run of %s: portclaim %s%s, exit %d: %s (this outcome since %s)\n", su.User, lr.Command, by, lr.Exit, lr.Summary, lr.Time.Local().Format(time.RFC3339))
			for _, l := range lr.Lines {
				fmt.Fprintf(w, "  %s\n", l)
			}
		} else if su.LastRunProblem != "" {
			fmt.Fprintf(w, "last run of %s: %s\n", su.User, su.LastRunProblem)
		}
	}
	if total == 0 {
		fmt.Fprintln(w, "no claims")
	}
}

// holderLines say who holds each of a claim's ports now, a line each.
func holderLines(c statusClaim) []string {
	var out []string
	for _, p := range c.Ports {
		if c.HoldersProblem != "" {
			out = append(out, fmt.Sprintf("%s: %s", p.PortProto(), c.HoldersProblem))
			continue
		}
		held := false
		for _, h := range c.Holders {
			if h.Port == p.Port && h.Protocol == string(p.Proto) {
				held = true
				out = append(out, fmt.Sprintf("%s: %s at %s", p.PortProto(), h.Says, h.Address))
			}
		}
		if !held {
			out = append(out, p.PortProto()+": free")
		}
	}
	return out
}
