package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/portclaim/portclaim/nixos-tests/fixture"
	"github.com/portclaim/portclaim/pkg/report"
)

const (
	claimsDir  = fixture.ClaimsDir
	policyPath = fixture.PolicyPath
)

// yieldTo is the test machine's services.portclaim.yield: the units each
// scenario may make yield, and to whom.
var yieldTo = map[string][]string{
	"pc-y1.service":       {"alice"},
	"pc-dry.service":      {"alice"},
	"pc-ask.service":      {"alice"},
	"pc-twice.service":    {"alice"},
	"pc-crash.service":    {"alice"},
	"pc-client.service":   {"alice"},
	"pc-hang.service":     {"alice"},
	"pc-sock.service":     {"alice"},
	"pc-sock.socket":      {"alice"},
	"pc-half.service":     {"alice"}, // but not pc-half.socket
	"pc-nobroker.service": {"alice"},
	"pc-nobus.service":    {"alice"},
	"pc-shared.service":   {"alice", "bob"},
	"pc-fail.service":     {"alice"},
	"pc-dep.service":      {"alice"},
	"pc-dep-req.service":  {"alice"},
	"pc-dep-bind.service": {"alice"},
	"pc-dep-part.service": {"alice"},
	"pc-refuse.service":   {"alice"}, // but not pc-refuse-dep.service
	"pc-block.service":    {"alice"},
	"pc-env.service":      {"alice"},
	"pc-escape.service":   {"alice"},
	"pc-drop.service":     {"alice"}, // dropped from the policy by TestStaleClaimsAreGivenBack
	"pc-gone.service":     {"alice", "carol"},
	"pc-half2.service":    {"alice"}, // but not pc-half2.socket
	"pc-conf.service":     {"alice"}, // but not pc-conf-victim.service
	"pc-pend.service":     {"alice"},
	"pc-sw.service":       {"alice"}, // but not its StopWhenUnneeded helper
	"pc-by.service":       {"alice"},
	"pc-mask.service":     {"bob"},
	"pc-late.service":     {"alice"},
	"pc-r2x.service":      {"alice", "bob"},
	"pc-r2slow.service":   {"bob"},
	"pc-r2pol.service":    {"bob"}, // dropped from the policy mid-request
	"pc-r2w.service":      {"alice"},
	"pc-r2t.service":      {"alice"},
}

// installed is what the NixOS module would install for yieldTo.
var installed fixture.Files

func portclaim(t *testing.T, ctx context.Context, user string, env []string, args ...string) (string, int) {
	t.Helper()
	res := m.RunEnv(ctx, user, env, append([]string{"portclaim"}, args...)...)
	if res.Err != nil && !strings.Contains(res.Err.Error(), "signal: killed") {
		t.Fatalf("%s", res)
	}
	return res.Stdout + res.Stderr, res.ExitCode
}

type claimFile struct {
	User      string    `json:"user"`
	Service   string    `json:"service"`
	Method    string    `json:"method"`
	With      string    `json:"with"`
	ClaimedAt time.Time `json:"claimedAt"`
	Prior     struct {
		ActiveState   string `json:"activeState"`
		UnitFileState string `json:"unitFileState"`
	} `json:"prior"`
	Release *struct {
		Attempts  int    `json:"attempts"`
		LastError string `json:"lastError"`
	} `json:"release"`
}

// readClaim reads alice's claim on unit; ok is false when there is none.
func readClaim(t *testing.T, ctx context.Context, unit string) (c claimFile, ok bool) {
	t.Helper()
	return readClaimIn(t, ctx, claimsDir+"/alice", unit)
}

// readClaimIn reads the claim on unit in dir.
func readClaimIn(t *testing.T, ctx context.Context, dir, unit string) (c claimFile, ok bool) {
	t.Helper()
	r := m.Run(ctx, "root", "cat", dir+"/"+unit)
	if r.ExitCode != 0 {
		return c, false
	}
	if err := json.Unmarshal([]byte(r.Stdout), &c); err != nil {
		t.Fatalf("claim file of %s: %v\n%s", unit, err, r.Stdout)
	}
	return c, true
}

// state is everything a run that changes nothing must leave alone: the
// unit states and the claims directory, byte for byte.
func state(t *testing.T, ctx context.Context, unitNames ...string) string {
	t.Helper()
	var b strings.Builder
	for _, u := range unitNames {
		b.WriteString(must(t, ctx, "root", "systemctl", "show", "-p", "ActiveState,SubState,UnitFileState,LoadState", u))
	}
	b.WriteString(must(t, ctx, "root", "sh", "-c",
		// Directories by name, mode and owner; files also by size, mtime
		// and content (the lock file excepted: taking it changes nothing).
		"find "+claimsDir+" /run/systemd/transient -type d -printf '%p %m %u\\n' | sort; "+
			"find "+claimsDir+" /run/systemd/transient ! -type d ! -name .lock -printf '%p %s %T@ %m %u %l\\n' | sort; "+
			"find "+claimsDir+" -type f ! -name .lock -exec sha256sum {} + | sort"))
	return b.String()
}

func contains(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, out)
		}
	}
}

// v2 is a manifest of one service whose user side is a home-manager
// podman container publishing "PORT:PORT".
func v2(name, systemUnit string, port int) string {
	return fmt.Sprintf(`{"version":2,"services":[{"name":%q,"systemUnits":[%q],"userUnits":["podman-%s.service"],"ports":[{"port":%d}],`+
		`"origin":{"podman":{"container":%q,"ports":["%d:%d"]}}}]}`, name, systemUnit, name, port, name, port, port)
}

func TestResolveKeepsTheUnitDownAcrossRebootUntilRelease(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-y1.service", "", true, true, "tcp4:127.0.0.1:7201")
	userUnit(t, ctx, "alice", "podman-y1.service", "tcp::7201")
	path := manifest(t, "y1", oneService("y1", "pc-y1.service", "podman-y1.service", 7201, ""))

	out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path)
	if code != 0 {
		t.Fatalf("resolve exit %d\n%s", code, out)
	}
	contains(t, "resolve output", out, "yielded  pc-y1.service to alice: stopped and claimed", "7201/tcp free for podman-y1.service")
	if s := isActive(ctx, "pc-y1.service"); s != "inactive" {
		t.Fatalf("pc-y1.service is %s after resolve", s)
	}
	c, ok := readClaim(t, ctx, "pc-y1.service")
	if !ok || c.User != "alice" || c.Service != "y1" || c.Method != "condition" || c.Prior.ActiveState != "active" || c.Prior.UnitFileState != "enabled" {
		t.Fatalf("claim = %+v (exists %v); want alice's, service y1, method condition, prior active/enabled", c, ok)
	}
	// The broker wrote it: root's, and alice may not change it.
	if owner := must(t, ctx, "root", "stat", "-c", "%U %a", claimsDir+"/alice", claimsDir+"/alice/pc-y1.service"); owner != "root 755\nroot 644\n" {
		t.Errorf("claims directory and file are %q, want root's 755 and 644", owner)
	}
	if r := m.Run(ctx, "alice", "rm", "-f", claimsDir+"/alice/pc-y1.service"); r.ExitCode == 0 {
		t.Error("alice removed her claim file by hand: claims are root's")
	}
	afterSwitches(t, ctx)

	// home-manager's reloadSystemd would start the user unit now: it binds.
	userctl(t, ctx, "alice", "enable", "--now", "podman-y1.service")
	waitListening(t, ctx, "tcp:*:7201")
	doc, res := check(t, ctx, runners[0], path)
	if res.ExitCode != 0 || doc.Ports[0].Status != "self" {
		t.Fatalf("after resolve, alice's unit should own 7201\n%s", res)
	}

	// Root starting the unit by hand: skipped, and systemd says why.
	must(t, ctx, "root", "systemctl", "start", "pc-y1.service")
	if s := isActive(ctx, "pc-y1.service"); s != "inactive" {
		t.Fatalf("systemctl start brought pc-y1.service back (%s) despite the claim", s)
	}
	status := m.Run(ctx, "root", "systemctl", "status", "pc-y1.service").Stdout
	contains(t, "systemctl status", status, "ConditionPathExists=!"+claimsDir+"/alice/pc-y1.service")

	// Reboot: system units start before lingering user units; the
	// condition keeps pc-y1 down and alice's unit gets the port.
	if err := m.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	if s := isActive(ctx, "pc-y1.service"); s != "inactive" {
		t.Fatalf("pc-y1.service is %s after reboot", s)
	}
	waitUntil(t, ctx, "alice's podman-y1.service active after the reboot", func() (bool, string) {
		r := userctl(t, ctx, "alice", "is-active", "podman-y1.service")
		return r.ExitCode == 0, r.Stdout
	})
	doc, res = check(t, ctx, runners[0], path)
	if res.ExitCode != 0 || doc.Ports[0].Status != "self" {
		t.Fatalf("after reboot alice's unit should own 7201\n%s", res)
	}

	// The service leaves home.nix. While alice's unit still holds the
	// port, release defers; once sd-switch has stopped it, release gives
	// the port back.
	empty := manifest(t, "y1-removed", `{"version":1,"services":[]}`)
	out, code = portclaim(t, ctx, "alice", nil, "release", "--manifest", empty)
	contains(t, "release while held", out, "deferred pc-y1.service: 7201/tcp is still held at [::]:7201 by user alice's podman-y1.service")
	if _, ok := readClaim(t, ctx, "pc-y1.service"); !ok || code != 0 {
		t.Fatalf("release must keep the claim while 7201 is held (exit %d)", code)
	}
	userctl(t, ctx, "alice", "disable", "--now", "podman-y1.service")
	if out, code = portclaim(t, ctx, "alice", nil, "resolve", "--manifest", empty); code != 0 || out != "" {
		t.Fatalf("resolve with nothing to do: exit %d, want 0 and silence\n%s", code, out)
	}
	out, code = portclaim(t, ctx, "alice", nil, "release", "--manifest", empty)
	if code != 0 {
		t.Fatalf("release exit %d\n%s", code, out)
	}
	contains(t, "release output", out, "released pc-y1.service: started again, as it ran before the first claim")
	if _, ok := readClaim(t, ctx, "pc-y1.service"); ok {
		t.Fatal("the claim file is still there after release")
	}
	if s := isActive(ctx, "pc-y1.service"); s != "active" {
		t.Fatalf("pc-y1.service is %s after release", s)
	}
	waitListening(t, ctx, "tcp4:127.0.0.1:7201")
	afterSwitches(t, ctx)
	who := must(t, ctx, "root", "portclaim", "who", "7201")
	contains(t, "portclaim who 7201", who, "127.0.0.1:7201: system pc-y1.service")
	// Every action is in the journal with structured fields, by the
	// broker; alice's home holds only her last run.
	journalSays(t, ctx, "the broker's journal", []string{"claim pc-y1.service for alice: done", "stop pc-y1.service for alice: done",
		"defer pc-y1.service for alice: deferred", "start pc-y1.service for alice: done", "unclaim pc-y1.service for alice: done"},
		"-o", "cat", "PORTCLAIM_UNIT=pc-y1.service", "PORTCLAIM_USER=alice")
	st := must(t, ctx, "alice", "portclaim", "status")
	contains(t, "alice's status", st, "last run of alice: portclaim release", "exit 0", "released pc-y1.service")
}

func TestUnitNotInThePolicyIsLeftAlone(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-np.service", "", true, false, "tcp4:127.0.0.1:7202")
	refusedUnchanged(t, ctx, "np", "pc-np.service", v2("np", "pc-np.service", 7202), nil,
		`services.portclaim.yield."pc-np.service".users = [ "alice" ];`, "sudo portclaim resolve --user alice",
		`services.podman.containers.np.ports = [ "7203:7202" ];`)
}

// refusedUnchanged runs resolve as alice on body (one service on unit),
// with env: it must exit 0, say each of wants, change neither the unit
// nor the claims directory, and exit 1 when strict.
func refusedUnchanged(t *testing.T, ctx context.Context, name, unit, body string, env []string, wants ...string) {
	t.Helper()
	path := manifest(t, name, body)
	before := state(t, ctx, unit)
	out, code := portclaim(t, ctx, "alice", env, "resolve", "--manifest", path)
	if code != 0 {
		t.Fatalf("resolve exit %d, want 0 (not strict)\n%s", code, out)
	}
	contains(t, "resolve output", out, wants...)
	if after := state(t, ctx, unit); after != before {
		t.Errorf("state changed:\n%s\n---\n%s", before, after)
	}
	strict := manifest(t, name+"-strict", strings.Replace(body, `{"version":`, `{"strict":true,"version":`, 1))
	if out, code := portclaim(t, ctx, "alice", env, "resolve", "--manifest", strict); code != 1 {
		t.Errorf("strict resolve exit %d, want 1\n%s", code, out)
	}
}

// TestWithoutTheBrokerNothingChanges: the policy lets the unit yield, but
// nothing answers at the broker's socket (stopped), or it is not there at
// all (a machine without portclaim's NixOS module): nothing changes, and
// the message says what to configure, or the root command.
func TestWithoutTheBrokerNothingChanges(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-nobroker.service", "", true, false, "tcp4:127.0.0.1:7204")
	body := oneService("nobroker", "pc-nobroker.service", "podman-nobroker.service", 7204, "")
	must(t, ctx, "root", "systemctl", "stop", "portclaim.socket")
	t.Cleanup(func() { m.Run(context.Background(), "root", "systemctl", "start", "portclaim.socket") })
	refusedUnchanged(t, ctx, "nobroker", "pc-nobroker.service", body, nil,
		"portclaim.socket is stopped", "systemctl status portclaim.socket", "sudo portclaim resolve --user alice")
	// Without even the socket file (a machine without portclaim's NixOS
	// module), check and resolve say the same before trying it.
	must(t, ctx, "root", "rm", "-f", "/run/portclaim/broker.sock")
	path := manifest(t, "nobroker2", body)
	for _, args := range [][]string{{"check", "--manifest", path}, {"resolve", "--manifest", path}} {
		out, _ := portclaim(t, ctx, "alice", nil, args...)
		contains(t, strings.Join(args, " "), out, "broker is not there (no /run/portclaim/broker.sock)", "services.portclaim.enable = true;",
			"sudo portclaim resolve --user alice")
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-dry.service", "", true, true, "tcp4:127.0.0.1:7205")
	path := manifest(t, "dry", oneService("dry", "pc-dry.service", "podman-dry.service", 7205, ""))
	before := state(t, ctx, "pc-dry.service")
	out, _ := portclaim(t, ctx, "alice", nil, "resolve", "--dry-run", "--manifest", path)
	contains(t, "resolve --dry-run", out, "would ask the broker to yield pc-dry.service to alice for 7205/tcp")
	out, _ = portclaim(t, ctx, "root", nil, "resolve", "--user", "alice", "--dry-run", "--manifest", path)
	contains(t, "root resolve --dry-run", out, "would ask systemd (as root) to yield pc-dry.service to alice")
	if after := state(t, ctx, "pc-dry.service"); after != before {
		t.Errorf("a dry run changed the machine:\n%s\n---\n%s", before, after)
	}
}

func TestAutoResolveOffWithoutATerminalOnlyReports(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-ask.service", "", true, false, "tcp4:127.0.0.1:7206")
	body := strings.Replace(oneService("ask", "pc-ask.service", "podman-ask.service", 7206, ""), `"version":1,`, `"version":1,"autoResolve":false,`, 1)
	path := manifest(t, "ask", body)
	before := state(t, ctx, "pc-ask.service")
	out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	contains(t, "resolve output", out, "no terminal to ask: reporting only", "portclaim resolve --yes", "autoResolve = true")
	if after := state(t, ctx, "pc-ask.service"); after != before {
		t.Errorf("state changed without consent:\n%s\n---\n%s", before, after)
	}
	out, _ = portclaim(t, ctx, "alice", nil, "resolve", "--yes", "--manifest", path)
	if isActive(ctx, "pc-ask.service") != "inactive" {
		t.Errorf("--yes did not act:\n%s", out)
	}
}

func TestSecondResolveChangesNothing(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-twice.service", "", true, true, "tcp4:127.0.0.1:7207")
	path := manifest(t, "twice", oneService("twice", "pc-twice.service", "podman-twice.service", 7207, ""))
	if out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path); code != 0 || isActive(ctx, "pc-twice.service") != "inactive" {
		t.Fatalf("first resolve: exit %d\n%s", code, out)
	}
	before := state(t, ctx, "pc-twice.service")
	out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path)
	if code != 0 || out != "" {
		t.Fatalf("second resolve: exit %d, want 0 and nothing said\n%s", code, out)
	}
	out, _ = portclaim(t, ctx, "alice", nil, "resolve", "--verbose", "--manifest", path)
	contains(t, "resolve --verbose", out, "no conflicts", "alice's ports are free") // its own claim keeps the unit down
	if after := state(t, ctx, "pc-twice.service"); after != before {
		t.Errorf("the second resolve changed something:\n%s\n---\n%s", before, after)
	}
}

func TestHangingExecStopIsBounded(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-hang.service", "ExecStop=/bin/sleep 120\nTimeoutStopSec=300", true, false, "tcp4:127.0.0.1:7209")
	t.Cleanup(func() {
		exemptFromInvariant(t, "pc-hang.service") // root kills it
		m.Run(context.Background(), "root", "systemctl", "kill", "--signal=SIGKILL", "pc-hang.service")
	})
	path := manifest(t, "hang", oneService("hang", "pc-hang.service", "podman-hang.service", 7209, ""))
	start := time.Now()
	out, code := portclaim(t, ctx, "alice", nil, "resolve", "--wait", "3s", "--manifest", path)
	took := time.Since(start)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	contains(t, "resolve output", out, "stopping pc-hang.service: its stop job did not finish within 3s", "the claim keeps it down then")
	// The stop hangs for two minutes: a minute tells a bounded wait
	// from an unbounded one on a busy machine too.
	if took > time.Minute {
		t.Errorf("resolve took %s with --wait 3s", took)
	}
	// The record stays, with the state it had before: the unit will be
	// down, and release knows to start it again.
	c, ok := readClaim(t, ctx, "pc-hang.service")
	if !ok || c.Prior.ActiveState != "active" {
		t.Fatalf("claim %+v (exists %v); want it kept, prior active", c, ok)
	}
	if s := isActive(ctx, "pc-hang.service"); s != "deactivating" {
		t.Errorf("pc-hang.service is %s, want deactivating (systemd is still running ExecStop)", s)
	}
	m.Run(ctx, "root", "systemctl", "kill", "--signal=SIGKILL", "pc-hang.service")
	empty := manifest(t, "hang-removed", `{"version":1,"services":[]}`)
	out, _ = portclaim(t, ctx, "alice", nil, "release", "--manifest", empty)
	if isActive(ctx, "pc-hang.service") != "active" {
		t.Errorf("release after the stop finished did not bring it back:\n%s", out)
	}
}

func TestSocketActivatedUnitYieldsWithItsSocket(t *testing.T) {
	ctx := need(t)
	for _, name := range []string{"pc-sock", "pc-half"} {
		port := map[string]int{"pc-sock": 7210, "pc-half": 7211}[name]
		installUnit(t, ctx, name+".service", "[Service]\nExecStart=/bin/sleep infinity\n", false)
		installUnit(t, ctx, name+".socket", fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\n", port), false)
		must(t, ctx, "root", "systemctl", "start", name+".socket")
		waitListening(t, ctx, fmt.Sprintf("tcp:127.0.0.1:%d", port))
	}
	path := manifest(t, "sock", oneService("sock", "pc-sock.service", "podman-sock.service", 7210, ""))
	doc, res := check(t, ctx, runners[1], path)
	if len(doc.Conflicts) != 1 || doc.Conflicts[0].Holder.Unit != "pc-sock.socket" || doc.Conflicts[0].SystemUnit != "pc-sock.service" {
		t.Fatalf("want the conflict held by pc-sock.socket for pc-sock.service\n%s", res)
	}
	out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	contains(t, "resolve output", out, "yielded  pc-sock.socket to alice: stopped and claimed", "yielded  pc-sock.service to alice", "7210/tcp free")
	if isActive(ctx, "pc-sock.socket") != "inactive" || isActive(ctx, "pc-sock.service") != "inactive" {
		t.Fatal("socket or service still active")
	}
	for _, u := range []string{"pc-sock.socket", "pc-sock.service"} {
		if _, ok := readClaim(t, ctx, u); !ok {
			t.Errorf("no claim on %s", u)
		}
	}
	// pc-half.socket is not in the policy: the service alone may not
	// yield, since its socket would keep the port.
	half := manifest(t, "half", oneService("half", "pc-half.service", "podman-half.service", 7211, ""))
	out, _ = portclaim(t, ctx, "alice", nil, "resolve", "--manifest", half)
	contains(t, "resolve output", out, "does not let pc-half.socket yield to you", `services.portclaim.yield."pc-half.socket".users = [ "alice" ];`)
	if isActive(ctx, "pc-half.socket") != "active" {
		t.Error("pc-half.socket was stopped although it is not in the policy")
	}
	// Release starts the socket again (it was active), not the service.
	empty := manifest(t, "sock-removed", `{"version":1,"services":[]}`)
	out, _ = portclaim(t, ctx, "alice", nil, "release", "--manifest", empty)
	if isActive(ctx, "pc-sock.socket") != "active" || isActive(ctx, "pc-sock.service") != "inactive" {
		t.Errorf("after release: socket %s, service %s; want active, inactive\n%s", isActive(ctx, "pc-sock.socket"), isActive(ctx, "pc-sock.service"), out)
	}
	waitListening(t, ctx, "tcp:127.0.0.1:7210")
}

func TestRootMasksAUnitWithoutConditions(t *testing.T) {
	ctx := need(t)
	// First, the fact that makes the naive fix wrong: a runtime mask
	// (/run/systemd/system) loses against /etc/systemd/system.
	systemUnit(t, ctx, "pc-naive.service", "", false, false, "tcp4:127.0.0.1:7212")
	t.Cleanup(func() { m.Run(context.Background(), "root", "systemctl", "unmask", "--runtime", "pc-naive.service") })
	mask := m.Run(ctx, "root", "systemctl", "mask", "--runtime", "pc-naive.service")
	m.Run(ctx, "root", "systemctl", "start", "pc-naive.service")
	if s := isActive(ctx, "pc-naive.service"); s != "active" {
		t.Fatalf("mask --runtime (%s) kept a unit in /etc/systemd/system down (%s): the design's premise changed", mask.Stderr, s)
	}
	t.Logf("`systemctl mask --runtime` said %q, exit %d, and the unit in /etc/systemd/system still started", strings.TrimSpace(mask.Stderr), mask.ExitCode)

	systemUnit(t, ctx, "pc-root.service", "", true, true, "tcp4:127.0.0.1:7213")
	path := manifest(t, "root", oneService("root", "pc-root.service", "podman-root.service", 7213, ""))
	// alice's manifest (autoResolve defaults to true) does not decide for
	// root: without --yes and without a terminal, root only reports.
	before := state(t, ctx, "pc-root.service")
	out, code := portclaim(t, ctx, "root", nil, "resolve", "--user", "alice", "--manifest", path)
	contains(t, "root resolve without --yes", out, "root acts for alice only when asked on a terminal", "sudo portclaim resolve --user alice --yes")
	if after := state(t, ctx, "pc-root.service"); code != 0 || after != before {
		t.Fatalf("root without --yes and without a terminal: exit %d, state changed %v\n%s", code, after != before, out)
	}
	if _, ok := readClaim(t, ctx, "pc-root.service"); ok {
		t.Fatal("root without --yes and without a terminal claimed the unit")
	}
	out, code = portclaim(t, ctx, "root", nil, "resolve", "--user", "alice", "--yes", "--manifest", path)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	contains(t, "root resolve", out, "yielded  pc-root.service to alice: stopped and claimed")
	if link := must(t, ctx, "root", "readlink", "/run/systemd/transient/pc-root.service"); strings.TrimSpace(link) != "/dev/null" {
		t.Fatalf("transient mask link -> %q", link)
	}
	if c, ok := readClaim(t, ctx, "pc-root.service"); !ok || c.Method != "transient-mask" {
		t.Fatalf("claim %+v (exists %v), want method transient-mask", c, ok)
	}
	if r := m.Run(ctx, "root", "systemctl", "start", "pc-root.service"); r.ExitCode == 0 || isActive(ctx, "pc-root.service") != "inactive" {
		t.Fatalf("systemctl start brought the root-claimed unit back\n%s", r)
	}
	afterSwitches(t, ctx) // the mask keeps it down through the switches too
	st := must(t, ctx, "root", "portclaim", "status")
	contains(t, "root's status", st, "claim: pc-root.service yields to alice", "kept down by a mask in /run/systemd/transient")
	empty := manifest(t, "root-removed", `{"version":1,"services":[]}`)
	out, code = portclaim(t, ctx, "root", nil, "release", "--user", "alice", "--manifest", empty)
	if code != 0 || isActive(ctx, "pc-root.service") != "active" {
		t.Fatalf("release: exit %d, unit %s\n%s", code, isActive(ctx, "pc-root.service"), out)
	}
	if r := m.Run(ctx, "root", "test", "-e", "/run/systemd/transient/pc-root.service"); r.ExitCode == 0 {
		t.Error("release left the mask behind")
	}
	// Root acts only for a named user.
	out, code = portclaim(t, ctx, "root", nil, "resolve", "--manifest", path)
	if code != 2 || !strings.Contains(out, "as root, name the user whose claims to act on: --user NAME") || isActive(ctx, "pc-root.service") != "active" {
		t.Errorf("root without --user: exit %d, want 2 and nothing changed\n%s", code, out)
	}
}

func TestStatusShowsClaimsAndHolders(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-dry.service", "", true, false, "tcp4:127.0.0.1:7205")
	path := manifest(t, "status", oneService("dry", "pc-dry.service", "podman-dry.service", 7205, ""))
	portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path)
	out, _ := portclaim(t, ctx, "alice", nil, "status")
	contains(t, "status", out, "policy: "+policyPath, "may yield: pc-dry.service to alice", "broker: listening at /run/portclaim/broker.sock",
		"claim: pc-dry.service yields to alice", "kept down by its ConditionPathExists", "7205/tcp: free",
		"last run of alice: portclaim resolve")
	rootOut, _ := portclaim(t, ctx, "root", nil, "status")
	contains(t, "root status", rootOut, "claim: pc-dry.service yields to alice", "may yield: pc-shared.service to alice, bob")
	var doc struct {
		Users []struct {
			User   string
			Claims []struct {
				Unit     string
				KeptDown bool
			}
		}
	}
	res := m.Run(ctx, "alice", "portclaim", "status", "--json")
	if err := json.Unmarshal([]byte(res.Stdout), &doc); err != nil || len(doc.Users) != 1 || doc.Users[0].Claims[0].Unit != "pc-dry.service" || !doc.Users[0].Claims[0].KeptDown {
		t.Errorf("status --json: %v\n%s", err, res)
	}
}

// TestForgedClaimsAreNotActedOn: the claims directory is root's, so a
// user cannot write a claim at all; and a file there that root did not
// write through portclaim (a user's from an older layout, a truncated
// record) makes nobody start, stop or unmask anything, and is reported.
func TestForgedClaimsAreNotActedOn(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-forge.service", "", false, false, "tcp4:127.0.0.1:7222")
	must(t, ctx, "root", "mkdir", "-p", claimsDir+"/alice")
	if r := m.Run(ctx, "alice", "sh", "-c", "echo '{}' > "+claimsDir+"/alice/pc-forge.service"); r.ExitCode == 0 {
		t.Fatal("alice wrote into her claims directory: it must be root's")
	}
	forged := map[string]string{
		"pc-forge.service": `{"version":2,"user":"alice","unit":"pc-forge.service","service":"x","ports":[],"claimedAt":"2026-01-01T00:00:00Z","method":"condition","prior":{"activeState":"active","unitFileState":""}}`,
		"pc-y1.service":    `{"version":2,"user":"alice","unit":"pc-y1`, // truncated
	}
	for unit, body := range forged {
		owner := "alice"
		if unit == "pc-y1.service" {
			owner = ""
		}
		if err := m.WriteFile(claimsDir+"/alice/"+unit, []byte(body), 0o644, owner); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Run(context.Background(), "root", "rm", "-f", claimsDir+"/alice/"+unit) })
	}
	empty := manifest(t, "forge", `{"version":1,"services":[]}`)
	for _, r := range []runner{{"root", "root", []string{"--user", "alice"}}, {"alice", "alice", nil}} {
		out, code := portclaim(t, ctx, r.user, nil, append([]string{"release", "--all", "--manifest", empty}, r.extra...)...)
		if code != 0 {
			t.Fatalf("as %s: exit %d\n%s", r.name, code, out)
		}
		contains(t, "release --all as "+r.name, out, "kept     pc-forge.service", "belongs to uid 1000", "kept     pc-y1.service", "not a whole claim record")
		if s := isActive(ctx, "pc-forge.service"); s != "inactive" {
			t.Fatalf("as %s: a forged claim got pc-forge.service started (%s)\n%s", r.name, s, out)
		}
	}
	st := must(t, ctx, "root", "portclaim", "status")
	contains(t, "status", st, "claim of alice on pc-y1.service:", "not a whole claim record", "root must repair or remove it")
}

// TestWithoutTheSystemBusNothingChanges: check still reports what it can
// see (exit 3); resolve changes nothing, says why, and exits 0 (1 strict).
func TestWithoutTheSystemBusNothingChanges(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-nobus.service", "", true, false, "tcp4:127.0.0.1:7224")
	path := manifest(t, "nobus-check", oneService("nobus", "pc-nobus.service", "podman-nobus.service", 7224, ""))
	noBus := []string{"DBUS_SYSTEM_BUS_ADDRESS=unix:path=/run/nonexistent-bus"}
	res := m.RunEnv(ctx, "alice", noBus, "portclaim", "check", "--json", "--manifest", path)
	var doc report.CheckDoc
	if err := json.Unmarshal([]byte(res.Stdout), &doc); err != nil || res.ExitCode != 3 {
		t.Fatalf("check without the system bus: want exit 3 and the JSON report\n%s", res)
	}
	if len(doc.Errors) == 0 || !strings.Contains(doc.Errors[0], "system bus") || len(doc.Conflicts) != 1 || doc.Conflicts[0].Holder.Unit != "pc-nobus.service" {
		t.Errorf("want the system bus named as the problem and the conflict still seen\n%s", res)
	}
	text := m.RunEnv(ctx, "alice", noBus, "portclaim", "check", "--manifest", path)
	if strings.Contains(text.Stdout, "\nno conflicts") {
		t.Errorf("check says there are no conflicts while it could not check:\n%s", text)
	}
	refusedUnchanged(t, ctx, "nobus", "pc-nobus.service", oneService("nobus", "pc-nobus.service", "podman-nobus.service", 7224, ""), noBus,
		"nothing was changed", "system bus")
}

// TestAskOnATerminal: with autoResolve = false and a person at a
// terminal, resolve asks, naming the port and what holds it; "no" (or the
// end of input, which ends the prompt's line) changes nothing, "yes" acts.
func TestAskOnATerminal(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-ask.service", "", true, false, "tcp4:127.0.0.1:7206")
	body := strings.Replace(oneService("ask", "pc-ask.service", "podman-ask.service", 7206, ""), `"version":1,`, `"version":1,"autoResolve":false,`, 1)
	path := manifest(t, "ask-tty", body)
	// script(1) gives portclaim a terminal; its input is what we pipe.
	onTerminal := func(input string) string {
		return must(t, ctx, "alice", "sh", "-c", fmt.Sprintf("printf '%s' | script -qec 'portclaim resolve --manifest %s' /dev/null", input, path))
	}
	out := onTerminal("")
	contains(t, "the prompt", out, "Stop pc-ask.service (system pc-ask.service (pid", "holdport", "on 127.0.0.1:7206) and keep it down for alice, so that podman-ask.service can have 7206/tcp? [y/N] \r\n",
		"skipped  pc-ask.service: not confirmed; nothing changed")
	if isActive(ctx, "pc-ask.service") != "active" {
		t.Fatal("no answer stopped the unit")
	}
	onTerminal("y\\n")
	if isActive(ctx, "pc-ask.service") != "inactive" {
		t.Fatalf("yes did not act")
	}
}

// TestFleetMetrics: root's `status --format prometheus` writes, for the
// textfile collector, every user's claims and the conflicts their own
// manifests have, in a file Prometheus' parser reads.
func TestFleetMetrics(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-y1.service", "", true, false, "tcp4:127.0.0.1:7250")
	if err := m.WriteFile("/home/alice/.config/portclaim/manifest.json", []byte(oneService("y1", "pc-y1.service", "podman-y1.service", 7250, "")), 0o644, "alice"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Run(context.Background(), "root", "rm", "-rf", "/home/alice/.config/portclaim") })
	// The metrics service as the NixOS module renders it, hardening and
	// all: what it may read decides what the fleet sees.
	withMetrics, err := fixture.RenderWithMetrics(ctx, yieldTo, "/var/lib/node-exporter")
	if err != nil {
		t.Fatal(err)
	}
	switchFor(t, ctx, withMetrics)
	if res := m.Run(ctx, "root", "systemctl", "start", "portclaim-metrics.service"); res.ExitCode != 0 {
		t.Fatalf("%s\n%s", res, m.Run(ctx, "root", "journalctl", "-b", "-u", "portclaim-metrics.service", "--no-pager").Stdout)
	}
	data, err := os.ReadFile(filepath.Join(m.Root(), "var/lib/node-exporter/portclaim.prom"))
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("Prometheus' parser: %v\n%s", err, data)
	}
	found := false
	for _, mt := range fams["portclaim_conflicts"].GetMetric() {
		labels := map[string]string{}
		for _, l := range mt.Label {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["user"] == "alice" && labels["port"] == "7250" && labels["kind"] == "resolvable" && mt.GetGauge().GetValue() == 1 {
			found = true
		}
	}
	checked := false
	for _, mt := range fams["portclaim_checked"].GetMetric() {
		for _, l := range mt.Label {
			if l.GetName() == "user" && l.GetValue() == "alice" && mt.GetGauge().GetValue() == 1 {
				checked = true
			}
		}
	}
	if !found || !checked || fams["portclaim_broker_listening"].GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Errorf("alice checked, her conflict on 7250, or the broker, missing from what portclaim-metrics.service wrote:\n%s", data)
	}
}
