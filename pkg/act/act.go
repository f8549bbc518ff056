// Package act carries out a plan: it writes and removes claim files, stops
// and starts system units over D-Bus (as the user, polkit decides), and
// waits, bounded, for ports to change hands. It does exactly what the plan
// lists; on a failure it undoes that step and says so.
package act

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/portclaim/portclaim/pkg/actionlog"
	"github.com/portclaim/portclaim/pkg/claims"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/manifest"
	"github.com/portclaim/portclaim/pkg/plan"
	"github.com/portclaim/portclaim/pkg/sockets"
	"github.com/portclaim/portclaim/pkg/systemd"
)

// TransientDir is the highest-priority unit directory: a /dev/null link
// there masks a unit even when its file is in /etc/systemd/system.
const TransientDir = "/run/systemd/transient"

// Executor runs plans for one user.
type Executor struct {
	Sys      *systemd.Manager
	System   map[string]host.Unit // state before acting, for the claims' Prior
	ProcRoot string
	UID      int // the user's: sockets of this uid are the user's own
	User     string
	// ClaimsDir is the policy's claims directory (not the user's subdirectory).
	ClaimsDir    string
	TransientDir string
	Wait         time.Duration // bound for each job and each port wait
	DryRun       bool
	// Confirm asks before a step; nil acts without asking.
	Confirm  func(question string) bool
	Manifest manifest.Manifest
	Log      *actionlog.Log
	Out      io.Writer
}

func (x *Executor) dir() string { return claims.Dir(x.ClaimsDir, x.User) }

// dirFor is where a claim made by method lives: the user's directory (the
// path its unit's condition names), or for a transient mask, root's.
func (x *Executor) dirFor(method string) string {
	if method == claims.ByTransientMask {
		return claims.MaskDir(x.ClaimsDir, x.User)
	}
	return x.dir()
}

func (x *Executor) say(verb, format string, args ...any) {
	fmt.Fprintf(x.Out, "%-8s %s\n", verb, fmt.Sprintf(format, args...))
}

// Resolve carries out steps and returns how many conflicts are left.
func (x *Executor) Resolve(ctx context.Context, steps []plan.Step, now []host.Socket) (left int) {
	for _, st := range steps {
		switch st.Action {
		case plan.Refuse, plan.Report:
			x.say(string(st.Action), "%s (%s): %s", strings.Join(st.Units, ", "), st.Service, st.Fix)
			if st.Action == plan.Refuse {
				x.Log.Add(actionlog.Entry{Action: "refuse", Unit: strings.Join(st.Units, ","), Ports: st.Ports, Result: "refused", Msg: st.Fix})
			}
			x.suggest(st, now)
			left += len(st.Findings)
		default:
			if !x.yield(ctx, st) {
				x.suggest(st, now)
				left += len(st.Findings)
			}
		}
	}
	return left
}

// suggest prints the nearest free port for each finding and the home.nix
// line that moves the user unit there.
func (x *Executor) suggest(st plan.Step, now []host.Socket) {
	for _, f := range st.Findings {
		if p := plan.SuggestPort(f.Want, now, x.Manifest); p != 0 {
			x.say("", "or move %s off %d/%s: %d is free: %s", f.UserUnit, f.Want.Port, f.Want.Proto, p, plan.MoveLine(f, p))
		}
	}
}

// yield claims and stops one group of units; it reports whether the
// conflict is gone.
func (x *Executor) yield(ctx context.Context, st plan.Step) bool {
	what := strings.Join(st.Units, " and ")
	if st.Action == plan.KeepDown {
		what += " (stopped, but enabled: it would take the port at boot)"
	}
	if x.DryRun {
		x.say("would", "yield %s to %s: write %s, %s", what, x.User, x.claimPaths(st), x.verbs(st))
		return false
	}
	if x.Confirm != nil && !x.Confirm(fmt.Sprintf("Stop %s and keep it down for %s (service %s)?", what, x.User, st.Service)) {
		x.say("skip", "%s: not confirmed; nothing changed", what)
		return false
	}
	if st.Method == "" {
		x.say("warn", "%s", st.Fix)
	}
	written, err := x.claim(ctx, st)
	if err != nil {
		x.undo(ctx, st, written)
		x.say("failed", "%s: %v; nothing is left changed", what, err)
		return false
	}
	crashPoint("after-claim")
	if st.Action == plan.Yield {
		var stopped []string
		for _, u := range st.Units {
			if err := x.stop(ctx, u, st.Ports); err != nil {
				x.rollback(ctx, st, written, stopped, u, err)
				return false
			}
			stopped = append(stopped, u)
		}
	}
	if holder := x.waitFree(ctx, st.Ports); holder != "" {
		x.say("held", "%s stopped and claimed, but %s", what, holder)
		return false
	}
	x.say("yielded", "%s to %s: claimed in %s (%s); %s free", what, x.User, x.dirFor(st.Method), methodText(st.Method), portsText(st.Ports))
	return true
}

func (x *Executor) claimPaths(st plan.Step) string {
	var ps []string
	for _, u := range st.Units {
		ps = append(ps, filepath.Join(x.dirFor(st.Method), u))
	}
	return strings.Join(ps, ", ")
}

func (x *Executor) verbs(st plan.Step) string {
	var vs []string
	if st.Method == claims.ByTransientMask {
		vs = append(vs, "mask in "+x.TransientDir)
	}
	if st.Action == plan.Yield {
		vs = append(vs, "stop "+strings.Join(st.Units, ", then "))
	}
	vs = append(vs, "wait up to "+x.Wait.String()+" for "+portsText(st.Ports))
	return strings.Join(vs, ", ")
}

// claim writes the claim files (and for root without conditions, the
// transient masks); it returns the units it wrote claims for.
func (x *Executor) claim(ctx context.Context, st plan.Step) ([]string, error) {
	dir := x.dirFor(st.Method)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w (the NixOS module creates it: is services.portclaim enabled?)", dir, err)
	}
	var written []string
	for _, u := range st.Units {
		if slices.Contains(st.Existing, u) {
			continue // converge: keep the first claim and its prior state
		}
		prior := x.System[u]
		c := claims.Claim{Version: 1, User: x.User, Unit: u, Service: st.Service, Ports: claims.PortsOf(st.Ports),
			ClaimedAt: time.Now().UTC(), Method: st.Method,
			Prior: claims.Prior{ActiveState: prior.ActiveState, UnitFileState: prior.UnitFileState}}
		if err := claims.Write(dir, c); err != nil {
			return written, err
		}
		written = append(written, u)
		x.Log.Add(actionlog.Entry{Action: "claim", Unit: u, Ports: st.Ports, Result: "done", Msg: "for " + x.User})
	}
	if st.Method == claims.ByTransientMask {
		for _, u := range st.Units {
			if err := x.mask(u); err != nil {
				return written, err
			}
		}
		if err := x.Sys.Reload(ctx); err != nil {
			return written, fmt.Errorf("daemon-reload after masking: %w", err)
		}
	}
	return written, nil
}

func (x *Executor) mask(unit string) error {
	link := filepath.Join(x.TransientDir, unit)
	if target, err := os.Readlink(link); err == nil && target == "/dev/null" {
		return nil
	}
	if err := os.MkdirAll(x.TransientDir, 0o755); err != nil {
		return err
	}
	if err := os.Symlink("/dev/null", link); err != nil {
		return fmt.Errorf("masking %s: %w", unit, err)
	}
	x.Log.Add(actionlog.Entry{Action: "mask", Unit: unit, Result: "done", Msg: link + " -> /dev/null"})
	return nil
}

// unmask removes only a /dev/null link we could have made.
func (x *Executor) unmask(unit string) bool {
	link := filepath.Join(x.TransientDir, unit)
	if target, err := os.Readlink(link); err != nil || target != "/dev/null" {
		return false
	}
	if err := os.Remove(link); err != nil {
		return false
	}
	x.Log.Add(actionlog.Entry{Action: "unmask", Unit: unit, Result: "done", Msg: link})
	return true
}

// rollback puts a group back as it was after the stop of failed did not
// work: the claims this run wrote are removed (a claim from an earlier
// run keeps its unit down, as it did before), and the units this run
// stopped before it are started again.
func (x *Executor) rollback(ctx context.Context, st plan.Step, written, stopped []string, failed string, err error) {
	x.undo(ctx, st, written)
	what := "the unit is as systemd left it"
	if slices.Contains(written, failed) {
		what = "its claim was removed again, " + what
	}
	x.say("failed", "%s: %v; %s", failed, err, what)
	for i := len(stopped) - 1; i >= 0; i-- {
		u := stopped[i]
		if !x.System[u].Active() {
			continue
		}
		if err := x.start(ctx, u, st.Ports); err != nil {
			x.say("failed", "%s was stopped before %s failed, and %v", u, failed, err)
			continue
		}
		x.say("restored", "%s: started again, as it was", u)
	}
}

// undo removes the claims of units (and their masks) after a failure.
func (x *Executor) undo(ctx context.Context, st plan.Step, us []string) {
	reload := false
	for _, u := range us {
		if err := claims.Remove(x.dirFor(st.Method), u); err != nil {
			x.say("failed", "%v", err)
		} else {
			x.Log.Add(actionlog.Entry{Action: "unclaim", Unit: u, Ports: st.Ports, Result: "done", Msg: "undoing a failed yield"})
		}
		if st.Method == claims.ByTransientMask && x.unmask(u) {
			reload = true
		}
	}
	if reload {
		x.Sys.Reload(ctx)
	}
}

func (x *Executor) stop(ctx context.Context, unit string, ports []endpoint.Endpoint) error {
	res, err := x.Sys.Stop(ctx, unit, x.Wait)
	result := string(res)
	switch {
	case err != nil:
		result = "denied"
		if !isAccessDenied(err) {
			result = "error"
		}
	case res == "":
		result = "timeout"
	}
	x.Log.Add(actionlog.Entry{Action: "stop", Unit: unit, Ports: ports, Result: result, Msg: "for " + x.User})
	switch {
	case err != nil && isAccessDenied(err):
		return fmt.Errorf("systemd refused to stop it for %s (%v): polkit grants no \"stop\" on %s; on NixOS add services.portclaim.yield.%q.users = [ %q ];", x.User, err, unit, unit, x.User)
	case err != nil:
		return fmt.Errorf("stopping it: %w", err)
	case res == "":
		return fmt.Errorf("the stop job did not finish within %s (a slow or hanging ExecStop?); systemd goes on stopping it; run portclaim resolve again once it is down", x.Wait)
	case res != "done":
		return fmt.Errorf("the stop job ended %q", res)
	}
	return nil
}

func isAccessDenied(err error) bool {
	s := err.Error()
	return strings.Contains(s, "Interactive authentication required") || strings.Contains(s, "Access denied") ||
		strings.Contains(s, "AccessDenied") || strings.Contains(s, "not authorized")
}

// waitFree polls the socket tables until no socket of another uid
// overlaps ports, up to x.Wait; it returns who still holds one, or "".
func (x *Executor) waitFree(ctx context.Context, ports []endpoint.Endpoint) string {
	deadline := time.Now().Add(x.Wait)
	for {
		held := x.heldBy(ports)
		if held == "" || time.Now().After(deadline) || ctx.Err() != nil {
			if held != "" {
				return fmt.Sprintf("after %s %s (`portclaim who %d` names the holder)", x.Wait, held, firstPort(ports))
			}
			return ""
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// heldBy describes the first socket of another uid than the user's that
// overlaps ports (the user's own are theirs to hold), or "".
func (x *Executor) heldBy(ports []endpoint.Endpoint) string {
	socks, err := x.onPorts(ports)
	if err != nil {
		return err.Error()
	}
	for _, want := range ports {
		for _, s := range socks {
			if endpoint.Overlap(want, s.Endpoint) && s.UID != uint32(x.UID) {
				return fmt.Sprintf("%d/%s is still held at %s by uid %d", want.Port, want.Proto, s.Endpoint, s.UID)
			}
		}
	}
	return ""
}

// onPorts reads the sockets on ports, in one read of the tables.
func (x *Executor) onPorts(ports []endpoint.Endpoint) ([]host.Socket, error) {
	var nums []uint16
	for _, p := range ports {
		nums = append(nums, p.Port)
	}
	tab, err := sockets.Read(x.ProcRoot, sockets.Around(nums, 0)...)
	return tab.Sockets, err
}

// Release carries out release steps; it returns how many were deferred or
// failed.
func (x *Executor) Release(ctx context.Context, steps []plan.ReleaseStep) (left int) {
	for _, st := range steps {
		c := st.Claim
		ports := c.Endpoints()
		if st.Deferred != "" {
			x.say("defer", "%s (%s): %s", c.Unit, c.Service, st.Deferred)
			x.Log.Add(actionlog.Entry{Action: "release", Unit: c.Unit, Ports: ports, Result: "deferred", Msg: st.Deferred})
			left++
			continue
		}
		if x.DryRun {
			then := "leave it stopped (it was not active before)"
			if st.Start {
				then = "start it again"
			}
			x.say("would", "release %s: remove %s, %s", c.Unit, filepath.Join(x.dirFor(c.Method), c.Unit), then)
			continue
		}
		if err := claims.Remove(x.dirFor(c.Method), c.Unit); err != nil {
			x.say("failed", "%v", err)
			left++
			continue
		}
		x.Log.Add(actionlog.Entry{Action: "unclaim", Unit: c.Unit, Ports: ports, Result: "done", Msg: "released by " + x.User})
		if c.Method == claims.ByTransientMask && x.unmask(c.Unit) {
			if err := x.Sys.Reload(ctx); err != nil {
				x.say("failed", "daemon-reload after unmasking %s: %v", c.Unit, err)
			}
		}
		if !st.Start {
			x.say("released", "%s: claim removed; it was not active before, so it stays stopped until something starts it", c.Unit)
			continue
		}
		if err := x.start(ctx, c.Unit, ports); err != nil {
			x.say("failed", "%s: claim removed, but %v", c.Unit, err)
			left++
			continue
		}
		x.say("released", "%s: claim removed, started again%s", c.Unit, x.holdsAgain(ctx, ports))
	}
	return left
}

func (x *Executor) start(ctx context.Context, unit string, ports []endpoint.Endpoint) error {
	res, err := x.Sys.Start(ctx, unit, x.Wait)
	result := string(res)
	if err != nil {
		result = "error"
	} else if res == "" {
		result = "timeout"
	}
	x.Log.Add(actionlog.Entry{Action: "start", Unit: unit, Ports: ports, Result: result, Msg: "released by " + x.User})
	switch {
	case err != nil && isAccessDenied(err):
		return fmt.Errorf("systemd refused to start it (%v): it starts at the next boot, or as root now: systemctl start %s", err, unit)
	case err != nil:
		return fmt.Errorf("starting it: %w", err)
	case res == "":
		return fmt.Errorf("the start job did not finish within %s", x.Wait)
	case res != "done":
		return fmt.Errorf("the start job ended %q (see systemctl status %s)", res, unit)
	}
	return nil
}

// holdsAgain waits, bounded, for the restarted unit to hold its ports.
func (x *Executor) holdsAgain(ctx context.Context, ports []endpoint.Endpoint) string {
	if len(ports) == 0 {
		return ""
	}
	deadline := time.Now().Add(x.Wait)
	for {
		socks, _ := x.onPorts(ports)
		missing := ""
		for _, want := range ports {
			if !slices.ContainsFunc(socks, func(s host.Socket) bool { return endpoint.Overlap(want, s.Endpoint) }) {
				missing = fmt.Sprintf("%d/%s", want.Port, want.Proto)
				break
			}
		}
		if missing == "" {
			return " and holds " + portsText(ports)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Sprintf(", but nothing listens on %s after %s", missing, x.Wait)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// crashPoint kills this process when PORTCLAIM_TEST_CRASH names point:
// fault injection for the end-to-end test that proves a run killed
// between writing a claim and stopping the unit converges on the next run.
func crashPoint(point string) {
	if os.Getenv("PORTCLAIM_TEST_CRASH") == point {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
}

func methodText(m string) string {
	switch m {
	case claims.ByCondition:
		return "its ConditionPathExists keeps it down, also across reboots"
	case claims.ByTransientMask:
		return "masked in " + TransientDir + " until release or reboot"
	}
	return "nothing keeps it down at boot"
}

func portsText(ps []endpoint.Endpoint) string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%d/%s", p.Port, p.Proto))
	}
	return strings.Join(out, ", ")
}

func firstPort(ps []endpoint.Endpoint) uint16 {
	if len(ps) == 0 {
		return 0
	}
	return ps[0].Port
}
