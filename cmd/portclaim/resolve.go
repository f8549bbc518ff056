package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/portclaim/portclaim/pkg/actionlog"
	"github.com/portclaim/portclaim/pkg/broker"
	"github.com/portclaim/portclaim/pkg/claimstore"
	"github.com/portclaim/portclaim/pkg/conflict"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/gather"
	"github.com/portclaim/portclaim/pkg/lastrun"
	"github.com/portclaim/portclaim/pkg/manifest"
	"github.com/portclaim/portclaim/pkg/plan"
	"github.com/portclaim/portclaim/pkg/report"
	"github.com/portclaim/portclaim/pkg/safeopen"
	"github.com/portclaim/portclaim/pkg/systemd"
	"github.com/portclaim/portclaim/pkg/yield"
)

// actFlags are shared by resolve and release: home-manager's activation
// passes --manifest and --switch, and --dry-run/--verbose under
// DRY_RUN/VERBOSE.
type actFlags struct {
	manifestFlag `embed:""`
	DryRun       bool          `name:"dry-run" help:"Say what would be done, change nothing."`
	Verbose      bool          `short:"v" help:"Also say what needs nothing done."`
	JSON         bool          `name:"json" help:"Print JSON (schema in the README)."`
	User         string        `help:"Act for this user's claims, with root's authority (root only; root must name one)." placeholder:"NAME"`
	Wait         time.Duration `default:"10s" help:"How long to wait for each stop or start, and for ports to change hands."`
	Timeout      time.Duration `default:"60s" help:"The longest the whole run may take."`
	Switch       bool          `name:"switch" help:"Run as a step of home-manager switch (its activation passes it): resolve leaves starting your user units to the switch; release checks that each holds its claimed ports."`
}

type resolveCmd struct {
	actFlags
	Yes bool `help:"Act without asking, even when the manifest says autoResolve = false, or as root for a user."`
}

// resolveDoc is resolve's JSON document.
type resolveDoc struct {
	User      string               `json:"user"`
	Manifest  report.Manifest      `json:"manifest"`
	DryRun    bool                 `json:"dryRun"`
	Yields    []yield.YieldResult  `json:"yields"`
	UserUnits []report.UserUnitDoc `json:"userUnits"`
	Left      []report.Conflict    `json:"left"`
	Notes     []string             `json:"notes"`
	Errors    []string             `json:"errors"`
}

func (c *resolveCmd) Run(a *app) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	t, m, src, err := a.lookFor(c.User, c.Manifest, true)
	if err != nil {
		return err
	}
	ask, cannot := c.consent(a, t, m)
	v := a.look(ctx, m, src, t, looking{declined: cannot != ""})
	r := &runLog{a: a, json: c.JSON, verbose: c.Verbose, dryRun: c.DryRun}
	doc := resolveDoc{User: t.Name, Manifest: src, DryRun: c.DryRun, Yields: []yield.YieldResult{}, UserUnits: []report.UserUnitDoc{},
		Left: []report.Conflict{}, Notes: nonNil(v.check.Notes), Errors: nonNil(v.check.Errors)}
	if c.Verbose && !c.JSON {
		report.Text(a.stdout, v.check)
	}
	conflicts := conflict.Conflicts(v.check.Findings)
	if len(v.check.Errors) > 0 {
		r.errorf("nothing was changed: %s", strings.Join(v.check.Errors, "; "))
		return a.finish(r, t, src, "resolve", strictCode(m, exitConflicts), conflicts, doc, c.JSON)
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
		r.verbosef("%s", portsNow(v, t))
	}
	code := exitOK
	if left > 0 {
		code = strictCode(m, exitConflicts)
	}
	return a.finish(r, t, src, "resolve", code, left, doc, c.JSON)
}

// portsNow says, with nothing in the way, whose each claimed port is:
// free, or held by the user's own unit ("held by your ...").
func portsNow(v view, t target) string {
	var held, free []string
	for _, f := range v.check.Findings {
		if f.Kind == conflict.Self {
			held = append(held, fmt.Sprintf("%s held by %s %s", f.Want.PortProto(), v.check.Whose(), f.Unit))
		} else {
			free = append(free, f.Want.PortProto())
		}
	}
	switch {
	case len(held) == 0:
		return t.Name + "'s ports are free"
	case len(free) == 0:
		return strings.Join(held, "; ")
	}
	return strings.Join(held, "; ") + "; free: " + strings.Join(free, ", ")
}

// yield asks for each planned yield (the broker, or as root in-process)
// and says what happened; it returns the system units whose ports are
// free now.
func (c *resolveCmd) yield(ctx context.Context, a *app, r *runLog, t target, v view, doc *resolveDoc, ask bool) map[string]bool {
	done := map[string]bool{}
	var in *bufio.Reader
	if ask {
		in = bufio.NewReader(a.stdin)
	}
	var root *yield.Service
	defer func() {
		if root != nil {
			doc.Notes = append(doc.Notes, r.unrecorded(root.Log)...)
		}
	}()
	for _, y := range v.plan.Yields {
		what := strings.Join(y.Units, " and ")
		if c.DryRun {
			r.printf("would ask %s to yield %s to %s for %s: claim, stop, wait up to %s for the ports", actorOf(t, a), what, t.Name, endpoint.PortList(y.Ports), c.Wait)
			continue
		}
		if in != nil && !a.ask(in, fmt.Sprintf("Stop %s (%s) and keep it down for %s, so that %s can have %s?",
			what, holders(v, y), t.Name, userUnits(v, y), endpoint.PortList(y.Ports))) {
			r.printf("skipped  %s: not confirmed; nothing changed", what)
			continue
		}
		req := yield.YieldRequest{Service: y.Service, Units: y.Units, Ports: y.Ports}
		a.progress("waiting up to %s for %s to stop and %s to be free...", c.Wait, what, endpoint.PortList(y.Ports))
		var res yield.YieldResult
		var err error
		if t.Root(a) {
			if root == nil {
				var closeBus func()
				root, closeBus, err = a.rootService(ctx, gather.ClaimsDir(v.snap.Policy, a.places.ServedNote), c.Wait)
				if err != nil {
					r.errorf("%v; nothing was changed", err)
					return done
				}
				defer closeBus()
			}
			res, err = root.Yield(ctx, t.Name, t.UID, req)
		} else {
			var resp broker.Response
			if resp, err = a.askBroker(ctx, "resolve", t.Name, broker.Request{Op: broker.OpYield, Yield: &req, WaitMS: c.Wait.Milliseconds()}); err == nil {
				res = *resp.Yield
			}
		}
		if err != nil {
			r.errorf("%s: %s", what, failedSays(err, t.Root(a)))
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

// consent says whether to ask before each yield, and when there is no
// terminal to ask on, why nothing is done. The user's manifest decides
// for the user (autoResolve); root acting for a user asks unless --yes,
// whatever that user's manifest says: the manifest names the units, and
// it is the user's, not root's, word that they may stop. A dry run
// changes nothing, so asks nothing.
func (c *resolveCmd) consent(a *app, t target, m manifest.Manifest) (ask bool, cannot string) {
	if c.Yes || c.DryRun {
		return false, ""
	}
	switch {
	case t.Root(a):
		if !a.stdinTTY {
			return false, fmt.Sprintf("root acts for %s only when asked on a terminal, and there is none: reporting only; `sudo portclaim resolve --user %s --yes` acts without asking", t.Name, t.Name)
		}
	case !m.AutoResolve:
		if !a.stdinTTY {
			return false, "autoResolve is off and there is no terminal to ask: reporting only; `portclaim resolve --yes` acts without asking, or set services.portclaim.autoResolve = true; in home.nix"
		}
	default:
		return false, ""
	}
	return true, ""
}

// actorOf names who acts: the broker, or root itself.
func actorOf(t target, a *app) string {
	if t.Root(a) {
		return "systemd (as root)"
	}
	return "the broker"
}

func holders(v view, y plan.Yield) string {
	var out []string
	for _, it := range v.plan.Items {
		f := it.Finding
		if f.SystemUnit == y.Units[len(y.Units)-1] {
			if f.Socket != nil {
				out = append(out, fmt.Sprintf("%s on %s", report.Who(f.Holder, v.check.NameOf), f.Socket.Endpoint))
			} else {
				out = append(out, "stopped, but enabled: it takes "+f.Want.PortProto()+" at boot")
			}
		}
	}
	return strings.Join(dedupe(out), "; ")
}

func userUnits(v view, y plan.Yield) string {
	var out []string
	for _, it := range v.plan.Items {
		if it.Finding.SystemUnit == y.Units[len(y.Units)-1] {
			out = append(out, it.Finding.UserUnit)
		}
	}
	return strings.Join(dedupe(out), " and ")
}

func dedupe(ss []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// askBroker sends command's request (resolve's yield, release's
// release) for user to portclaim's broker; the answer it returns carries
// the result the request asked for. Without a broker, it says how to get
// one, and root's command for user now.
func (a *app) askBroker(ctx context.Context, command, user string, req broker.Request) (broker.Response, error) {
	resp, err := broker.Call(ctx, a.places.BrokerSocket, req)
	if errors.Is(err, broker.ErrNoBroker) {
		who := user
		if gather.IsSocket(a.places.BrokerSocket) {
			return resp, fmt.Errorf("%w: portclaim.socket is stopped (`systemctl status portclaim.socket` says why; `sudo systemctl start portclaim.socket` starts it); until then root can: sudo portclaim %s --user %s", err, command, who)
		}
		return resp, fmt.Errorf("%w: portclaim's NixOS module installs it (services.portclaim.enable = true; in configuration.nix); until then root can: sudo portclaim %s --user %s", err, command, who)
	}
	if err != nil {
		return resp, err
	}
	if req.Op == broker.OpYield && resp.Yield == nil || req.Op == broker.OpRelease && resp.Release == nil {
		return resp, fmt.Errorf("the broker's answer has no result")
	}
	return resp, nil
}

// failedSays is a failed yield or release as the user reads it. The
// broker's answer says itself whether anything was changed; root's own
// run and a broker that is not there changed nothing unless the error
// says it did (yield.PartialError).
func failedSays(err error, root bool) string {
	if (root || errors.Is(err, broker.ErrNoBroker)) && yield.NothingChanged(err) {
		return err.Error() + "; nothing was changed"
	}
	return err.Error()
}

// rootService is the root side, in this process (root mode). Its bus
// connection outlives ctx (--timeout): once a yield or release has begun,
// it finishes, or rolls back, on its own budget; close releases it.
func (a *app) rootService(ctx context.Context, claimsDir string, wait time.Duration) (*yield.Service, func(), error) {
	sys, closeBus, err := systemd.SystemOutliving(ctx)
	if err != nil {
		return nil, nil, err
	}
	return &yield.Service{Store: claimstore.Store{Dir: claimsDir}, Authority: plan.Authority{Root: true}, Sys: sys,
		Places: a.places, Note: a.places.ServedNote, Wait: wait, Log: actionlog.Journal()}, closeBus, nil
}

// strictCode is code under strict = true, else 0: home-manager's
// activation is one `set -eu` script, and portclaim must not break it.
func strictCode(m manifest.Manifest, code int) int {
	if m.Strict {
		return code
	}
	return exitOK
}

// finish writes the JSON document or nothing more, records the run for
// `portclaim status` (the user's own in their state directory; root's
// for a user in root's place), and exits.
func (a *app) finish(r *runLog, t target, src report.Manifest, command string, code, left int, doc any, asJSON bool) error {
	if asJSON {
		if err := report.WriteJSON(a.stdout, doc); err != nil {
			return err
		}
	}
	if r.dryRun {
		return quietExit(code)
	}
	summary := fmt.Sprintf("%d conflict%s left", left, plural(left))
	if left == 0 {
		summary = "nothing left to do"
	}
	rec := lastrun.Record{Command: command, Time: time.Now().UTC(), Manifest: src.String(), Exit: code, Conflicts: left, Summary: summary, Lines: r.lines}
	var err error
	switch {
	case t.Root(a):
		rec.By = "root"
		err = lastrun.WriteRoot(a.places.RootRuns, t.Name, rec)
	case t.Self && a.euid != 0:
		var since time.Time
		if root := a.rootRun(t); root != nil {
			since = root.Time
		}
		err = lastrun.Write(lastrun.Dir(a.getenv), rec, since)
	}
	if err != nil && r.verbose {
		a.notef("not recording this run for `portclaim status`: %v", err)
	}
	return quietExit(code)
}

// rootRun is root's record of its last run for t, if root wrote one.
func (a *app) rootRun(t target) *lastrun.Record {
	data, err := safeopen.RootFile(filepath.Join(a.places.RootRuns, lastrun.RootFile(t.Name)), lastrun.MaxSize)
	if err != nil {
		return nil
	}
	rec, err := lastrun.Decode(data)
	if err != nil {
		return nil
	}
	return &rec
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// runLog is what an acting command says: on stdout (results) and stderr
// (warnings, errors), or with --json only in the document; every line is
// kept for the last-run record.
type runLog struct {
	a       *app
	json    bool
	verbose bool
	dryRun  bool
	lines   []string
}

// record keeps what was said for the last-run record, a line each.
func (r *runLog) record(prefix, msg string) {
	for i, l := range strings.Split(msg, "\n") {
		if i == 0 {
			l = prefix + l
		}
		r.lines = append(r.lines, l)
	}
}

func (r *runLog) printf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	r.record("", line)
	if !r.json {
		fmt.Fprintln(r.a.stdout, line)
	}
}

func (r *runLog) verbosef(format string, args ...any) {
	if r.verbose {
		r.printf(format, args...)
	}
}

func (r *runLog) warnf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	r.record("warning: ", line)
	if !r.json {
		r.a.warnf("%s", line)
	}
}

func (r *runLog) notef(format string, args ...any) {
	if !r.json {
		r.a.notef(format, args...)
	}
}

// unrecorded warns of the actions root took that the journal did not
// record, and returns the warnings for the JSON document's notes.
func (r *runLog) unrecorded(l *actionlog.Log) []string {
	if l == nil {
		return nil
	}
	for _, p := range l.Problems {
		r.warnf("%s", p)
	}
	return l.Problems
}

func (r *runLog) errorf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	r.record("error: ", line)
	if !r.json {
		r.a.errorf(line, "")
	}
}
