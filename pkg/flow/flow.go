// Package flow runs portclaim's acting commands end to end — resolve,
// release, status — for one user: it loads the policy and the user's
// claims, takes the lock, asks package inspect what is there, package plan
// what to do, and package act to do it. Exit codes are decided here.
package flow

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/portclaim/portclaim/pkg/act"
	"github.com/portclaim/portclaim/pkg/actionlog"
	"github.com/portclaim/portclaim/pkg/claims"
	"github.com/portclaim/portclaim/pkg/conflict"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/inspect"
	"github.com/portclaim/portclaim/pkg/manifest"
	"github.com/portclaim/portclaim/pkg/plan"
	"github.com/portclaim/portclaim/pkg/policy"
	"github.com/portclaim/portclaim/pkg/report"
	"github.com/portclaim/portclaim/pkg/sockets"
)

// Exit codes (README "Exit codes").
const (
	ExitOK        = 0
	ExitConflicts = 1
	ExitBadInput  = 2
	ExitEnv       = 3
)

// Options for one acting run.
type Options struct {
	Manifest   manifest.Manifest
	Source     string // manifest file, for messages
	ProcRoot   string
	UID        int
	User       string
	PolicyPath string
	Timeout    time.Duration // D-Bus conversation bound
	Wait       time.Duration // stop/start job and port bound
	DryRun     bool
	Verbose    bool // print the check report before acting
	All        bool // release: every claim
	Confirm    func(string) bool
	Out        io.Writer
}

// run is what resolve and release share: a session, the policy, the lock
// and the user's current claims.
type run struct {
	opt       Options
	sess      *inspect.Session
	pol       *policy.Policy
	noPolicy  string
	claimsDir string
	claims    map[string]claims.Claim
	ignored   []string // claim files not acted on (see loadClaims)
	unlock    func()
	log       *actionlog.Log
}

func start(ctx context.Context, opt Options, acting bool) (*run, error) {
	r := &run{opt: opt, claimsDir: policy.DefaultClaimsDir, claims: map[string]claims.Claim{}, unlock: func() {}}
	if p, err := policy.Load(opt.PolicyPath); err == nil {
		r.pol, r.claimsDir = &p, p.ClaimsDir
	} else {
		r.noPolicy = err.Error()
	}
	dir := claims.Dir(r.claimsDir, opt.User)
	root := os.Geteuid() == 0
	if acting && !opt.DryRun {
		if root {
			// The NixOS module's tmpfiles rule makes it; root acting for
			// a user before that must not leave it root's.
			if err := ensureUserDir(dir, opt.UID); err != nil {
				return nil, err
			}
		}
		if _, err := os.Stat(dir); err == nil {
			unlock, err := claims.Lock(dir, opt.Timeout)
			if err != nil {
				return nil, err
			}
			r.unlock = unlock
		}
	}
	if err := r.loadClaims(dir, root); err != nil {
		r.unlock()
		return nil, err
	}
	r.sess = inspect.Open(ctx, inspect.Options{ProcRoot: opt.ProcRoot, UID: opt.UID, Timeout: opt.Timeout})
	if acting && !opt.DryRun {
		r.log = actionlog.Open(actionlog.StateDir())
	}
	if acting && len(r.ignored) > 0 {
		fmt.Fprintf(opt.Out, "note: not acting on the claim files %s in %s: the policy does not let those units yield to %s\n",
			strings.Join(r.ignored, ", "), dir, opt.User)
	}
	return r, nil
}

// loadClaims reads the claims portclaim may act on. The user's own
// directory is the user's to write, so a claim there counts only for a
// service or socket the policy lets yield to that user, and only as a
// condition claim: whatever else a file there says, root will not start,
// stop or unmask a unit because of it. Claims root made with a transient
// mask live in a root-owned directory, read only by root.
func (r *run) loadClaims(dir string, root bool) error {
	list, err := claims.List(dir)
	if err != nil {
		return err
	}
	for _, c := range list {
		if r.pol == nil || !r.pol.Allows(r.opt.User, c.Unit) {
			r.ignored = append(r.ignored, c.Unit)
			continue
		}
		c.Method = claims.ByCondition
		r.claims[c.Unit] = c
	}
	if !root {
		return nil
	}
	masks, err := claims.List(claims.MaskDir(r.claimsDir, r.opt.User))
	if err != nil {
		return err
	}
	for _, c := range masks {
		c.Method = claims.ByTransientMask
		r.claims[c.Unit] = c
	}
	return nil
}

// ensureUserDir creates a user's claims directory owned by the user.
func ensureUserDir(dir string, uid int) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	return os.Chown(dir, uid, -1)
}

func (r *run) close() {
	r.sess.Close()
	r.log.Close()
	r.unlock()
	if r.log != nil {
		for _, p := range r.log.Problems {
			fmt.Fprintf(r.opt.Out, "note: not recorded: %s\n", p)
		}
	}
}

// keptDown are the system units this user's claims really keep down: a
// transient mask is in place, or the unit's condition names the claim.
// Condition claims are kept only for units the trusted policy lets yield
// to this user, and the NixOS module that rendered the policy rendered
// that condition too, so it is taken as given (no D-Bus call per claim).
func (r *run) keptDown() map[string]bool {
	out := map[string]bool{}
	for u, c := range r.claims {
		out[u] = true // loadClaims kept only condition claims of policy units, and root's masks
		if c.Method == claims.ByTransientMask {
			t, err := os.Readlink(filepath.Join(act.TransientDir, u))
			out[u] = err == nil && t == "/dev/null"
		}
	}
	return out
}

func (r *run) executor(res inspect.Result) *act.Executor {
	return &act.Executor{
		Sys: r.sess.System, System: res.System, ProcRoot: r.opt.ProcRoot, UID: r.opt.UID, User: r.opt.User,
		ClaimsDir: r.claimsDir, TransientDir: act.TransientDir, Wait: r.opt.Wait, DryRun: r.opt.DryRun,
		Confirm: r.opt.Confirm, Manifest: r.opt.Manifest, Log: r.log, Out: r.opt.Out,
	}
}

// Check looks without acting; the user's claims count (a claimed unit
// kept down by its condition is not latent).
func Check(ctx context.Context, opt Options) (inspect.Result, error) {
	r, err := start(ctx, opt, false)
	if err != nil {
		return inspect.Result{}, err
	}
	defer r.close()
	return r.sess.Check(ctx, opt.Manifest, r.keptDown()), nil
}

// Resolve checks, then acts per the manifest's strategy. It returns 0
// unless the manifest is strict and conflicts are left, or it could not
// act (no system bus, a claims directory it cannot lock): then 1.
func Resolve(ctx context.Context, opt Options) int {
	r, err := start(ctx, opt, true)
	if err != nil {
		fmt.Fprintf(opt.Out, "portclaim resolve: %v; nothing was changed\n", err)
		return strictCode(opt, ExitConflicts)
	}
	defer r.close()
	res := r.sess.Check(ctx, opt.Manifest, r.keptDown())
	if opt.Verbose {
		report.Text(opt.Out, opt.Source, res)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(opt.Out, "note: %s\n", n)
	}
	if len(res.Broken) > 0 {
		for _, b := range res.Broken {
			fmt.Fprintf(opt.Out, "error: %s\n", b)
		}
		fmt.Fprintln(opt.Out, "nothing was changed: portclaim stops units through the system manager, which it could not reach; "+
			"run it where the system bus is (on the host, not in a container), or as root stop the units that hold your ports (portclaim check names them)")
		return strictCode(opt, ExitConflicts)
	}
	in := plan.Input{Manifest: opt.Manifest, Findings: res.Findings, User: opt.User, Root: os.Geteuid() == 0,
		Policy: r.pol, NoPolicy: r.noPolicy, ClaimsDir: r.claimsDir, System: res.System,
		Conditions: r.conditions(ctx, res), Claims: r.claims}
	steps := plan.Resolve(in)
	if len(steps) == 0 {
		fmt.Fprintf(opt.Out, "portclaim resolve: %s's ports are free (%s)\n", opt.User, conflict.Summary(res.Findings))
		return ExitOK
	}
	left := r.executor(res).Resolve(ctx, steps, res.Sockets)
	if left == 0 {
		return ExitOK
	}
	fmt.Fprintf(opt.Out, "%d conflict(s) left\n", left)
	return strictCode(opt, ExitConflicts)
}

// conditions reads the start conditions of every unit resolve may act on,
// and completes their state in res.System.
func (r *run) conditions(ctx context.Context, res inspect.Result) map[string][]host.Condition {
	out := map[string][]host.Condition{}
	if r.sess.System == nil {
		return out
	}
	var services []string
	for _, f := range res.Findings {
		if (f.Kind == conflict.Resolvable || f.Kind == conflict.Latent) && !slices.Contains(services, f.SystemUnit) {
			services = append(services, f.SystemUnit)
		}
	}
	// A socket-activated service yields with its .socket, or the socket
	// would keep the port (and start the service again).
	if err := r.sess.System.AddTriggers(ctx, services, res.System); err != nil {
		fmt.Fprintf(r.opt.Out, "note: %v\n", err)
	}
	var inPlay []string
	for _, unit := range services {
		us := append([]string{unit}, res.System[unit].TriggeredBy...)
		for _, u := range us {
			if _, done := out[u]; done {
				continue
			}
			inPlay = append(inPlay, u)
			if conds, err := r.sess.System.Conditions(ctx, u); err == nil {
				out[u] = conds
			}
		}
	}
	// The claims record whether each unit was enabled.
	if err := r.sess.System.FillFileStates(ctx, inPlay, res.System); err != nil {
		fmt.Fprintf(r.opt.Out, "note: %v\n", err)
	}
	return out
}

// Release gives back the claims the manifest no longer needs (all of them
// with opt.All). It never breaks a switch: 0 unless strict.
func Release(ctx context.Context, opt Options) int {
	r, err := start(ctx, opt, true)
	if err != nil {
		fmt.Fprintf(opt.Out, "portclaim release: %v; nothing was changed\n", err)
		return strictCode(opt, ExitConflicts)
	}
	defer r.close()
	var list []claims.Claim
	for _, c := range r.claims {
		list = append(list, c)
	}
	sortClaims(list)
	if len(list) == 0 {
		// The common switch: nothing claimed, nothing to read.
		fmt.Fprintln(opt.Out, "portclaim release: no claims")
		return ExitOK
	}
	var ports []uint16
	for _, c := range list {
		for _, e := range c.Endpoints() {
			ports = append(ports, e.Port)
		}
	}
	tab, err := sockets.Read(opt.ProcRoot, sockets.Around(ports, 0)...)
	if err != nil {
		fmt.Fprintf(opt.Out, "error: %v; nothing was changed\n", err)
		return strictCode(opt, ExitConflicts)
	}
	running := map[string]bool{}
	if r.sess.System != nil {
		var names []string
		for _, c := range list {
			names = append(names, c.Unit)
		}
		if states, err := r.sess.System.Units(ctx, names, nil); err == nil {
			for n, u := range states {
				running[n] = u.Active()
			}
		}
	}
	steps := plan.Release(list, opt.Manifest, opt.All, tab.Sockets, running)
	if len(steps) == 0 {
		fmt.Fprintf(opt.Out, "portclaim release: nothing to give back (%d claim(s), all still declared)\n", len(list))
		return ExitOK
	}
	if r.sess.System == nil {
		fmt.Fprintf(opt.Out, "error: %v; nothing was changed\n", r.sess.SysErr)
		return strictCode(opt, ExitConflicts)
	}
	if left := r.executor(inspect.Result{}).Release(ctx, steps); left > 0 {
		return strictCode(opt, ExitConflicts)
	}
	return ExitOK
}

func sortClaims(cs []claims.Claim) {
	sort.Slice(cs, func(i, j int) bool { return cs[i].Unit < cs[j].Unit })
}

// strictCode is code under strict = true, else 0 (code is 1, "conflicts
// left", whatever kept portclaim from resolving them): home-manager's
// activation is one `set -eu` script, and portclaim must not break it.
func strictCode(opt Options, code int) int {
	if opt.Manifest.Strict {
		return code
	}
	return ExitOK
}

// Status shows the policy, the claims (this user's; root: everyone's) and
// who holds each claimed port now.
func Status(opt Options) int {
	out := opt.Out
	pol, err := policy.Load(opt.PolicyPath)
	claimsDir := policy.DefaultClaimsDir
	if err != nil {
		fmt.Fprintf(out, "policy: %v\n", err)
	} else {
		claimsDir = pol.ClaimsDir
		var mine []string
		for u, users := range pol.Yield {
			if slices.Contains(users, opt.User) || os.Geteuid() == 0 {
				mine = append(mine, fmt.Sprintf("%s (%s)", u, strings.Join(users, ", ")))
			}
		}
		sort.Strings(mine)
		fmt.Fprintf(out, "policy: %s, claims in %s\n", pol.Path, claimsDir)
		if len(mine) == 0 {
			fmt.Fprintf(out, "  no unit may yield to %s\n", opt.User)
		}
		for _, m := range mine {
			fmt.Fprintf(out, "  may yield: %s\n", m)
		}
	}
	users := []string{opt.User}
	if os.Geteuid() == 0 {
		users = nil
		entries, _ := os.ReadDir(claimsDir)
		for _, e := range entries {
			if e.IsDir() {
				users = append(users, e.Name())
			}
		}
	}
	total := 0
	for _, user := range users {
		list, err := claims.List(claims.Dir(claimsDir, user))
		if err != nil {
			fmt.Fprintf(out, "claims of %s: %v\n", user, err)
			continue
		}
		for _, c := range list {
			total++
			since := ""
			if !c.ClaimedAt.IsZero() {
				since = ", since " + c.ClaimedAt.Local().Format(time.RFC3339)
			}
			fmt.Fprintf(out, "claim: %s yields to %s (service %s%s, kept down by %s; was %s)\n",
				c.Unit, user, c.Service, since, orNone(c.Method), orNone(c.Prior.ActiveState))
			for _, p := range c.Endpoints() {
				held, err := inspect.Who(inspect.Options{ProcRoot: opt.ProcRoot}, p.Port, p.Proto, []host.UnitRef{{Name: c.Unit}})
				switch {
				case err != nil:
					fmt.Fprintf(out, "  %d/%s: %v\n", p.Port, p.Proto, err)
				case len(held) == 0:
					fmt.Fprintf(out, "  %d/%s: free\n", p.Port, p.Proto)
				}
				for _, h := range held {
					fmt.Fprintf(out, "  %s\n", report.WhoLine(h))
				}
			}
		}
	}
	if total == 0 {
		fmt.Fprintln(out, "no claims")
	}
	return ExitOK
}

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}
