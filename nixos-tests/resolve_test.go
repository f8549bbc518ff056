package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/portclaim/portclaim/nixos-tests/fixture"
	"github.com/portclaim/portclaim/nixos-tests/nixeval"
	"github.com/portclaim/portclaim/pkg/report"
)

const (
	claimsDir      = fixture.ClaimsDir
	policyPath     = fixture.PolicyPath
	polkitRulePath = fixture.PolkitRulePath
)

// yieldTo is the test machine's services.portclaim.yield: the units each
// scenario may make yield, and to whom.
var yieldTo = map[string][]string{
	"pc-y1.service":    {"alice"},
	"pc-y2.service":    {"alice"},
	"pc-dry.service":   {"alice"},
	"pc-ask.service":   {"alice"},
	"pc-twice.service": {"alice"},
	"pc-crash.service": {"alice"},
	"pc-hang.service":  {"alice"},
	"pc-sock.service":  {"alice"},
	"pc-sock.socket":   {"alice"},
	"pc-half.service":  {"alice"}, // but not pc-half.socket
}

// rendered is what module.nix renders for yieldTo.
var rendered nixeval.Rendered

func portclaim(t *testing.T, ctx context.Context, user string, env []string, args ...string) (string, int) {
	t.Helper()
	res := m.RunEnv(ctx, user, env, append([]string{"portclaim"}, args...)...)
	if res.Err != nil && !strings.Contains(res.Err.Error(), "signal: killed") {
		t.Fatalf("%s", res)
	}
	return res.Stdout + res.Stderr, res.ExitCode
}

type claimFile struct {
	Service   string    `json:"service"`
	Method    string    `json:"method"`
	ClaimedAt time.Time `json:"claimedAt"`
	Prior     struct {
		ActiveState   string `json:"activeState"`
		UnitFileState string `json:"unitFileState"`
	} `json:"prior"`
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

// state is everything a dry run must leave alone: the unit states and
// the claims directory, byte for byte.
func state(t *testing.T, ctx context.Context, unitNames ...string) string {
	t.Helper()
	var b strings.Builder
	for _, u := range unitNames {
		b.WriteString(must(t, ctx, "root", "systemctl", "show", "-p", "ActiveState,SubState,UnitFileState,LoadState", u))
	}
	b.WriteString(must(t, ctx, "root", "sh", "-c",
		// Directories by name, mode and owner; files also by size, mtime
		// and content. (A yield undone after polkit said no leaves the
		// directory's mtime changed, nothing else.)
		"find "+claimsDir+" /run/systemd/transient -type d -printf '%p %m %u\\n' | sort; "+
			"find "+claimsDir+" /run/systemd/transient ! -type d -printf '%p %s %T@ %m %u %l\\n' | sort; "+
			"find "+claimsDir+" -type f -exec sha256sum {} + | sort"))
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

func TestResolveKeepsTheUnitDownAcrossRebootUntilRelease(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-y1.service", "", true, true, "tcp4:127.0.0.1:7201")
	userUnit(t, ctx, "alice", "podman-y1.service", "tcp::7201")
	path := manifest(t, "y1", oneService("y1", "pc-y1.service", "podman-y1.service", 7201, ""))

	out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path)
	if code != 0 {
		t.Fatalf("resolve exit %d\n%s", code, out)
	}
	contains(t, "resolve output", out, "yielded  pc-y1.service to alice", "7201/tcp free")
	if s := isActive(ctx, "pc-y1.service"); s != "inactive" {
		t.Fatalf("pc-y1.service is %s after resolve", s)
	}
	c, ok := readClaim(t, ctx, "pc-y1.service")
	if !ok || c.Service != "y1" || c.Method != "condition" || c.Prior.ActiveState != "active" || c.Prior.UnitFileState != "enabled" {
		t.Fatalf("claim = %+v (exists %v); want service y1, method condition, prior active/enabled", c, ok)
	}

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
	deadline := time.Now().Add(10 * time.Second)
	for userctl(t, ctx, "alice", "is-active", "podman-y1.service").ExitCode != 0 {
		if time.Now().After(deadline) {
			t.Fatal("alice's podman-y1.service is not active after reboot")
		}
		time.Sleep(100 * time.Millisecond)
	}
	doc, res = check(t, ctx, runners[0], path)
	if res.ExitCode != 0 || doc.Ports[0].Status != "self" {
		t.Fatalf("after reboot alice's unit should own 7201\n%s", res)
	}

	// The service leaves home.nix. While alice's unit still holds the
	// port, release defers; once sd-switch has stopped it, release gives
	// the port back.
	empty := manifest(t, "y1-removed", `{"version":1,"services":[]}`)
	out, code = portclaim(t, ctx, "alice", nil, "release", "--manifest", empty)
	contains(t, "release while held", out, "defer", "pc-y1.service", "still held")
	if _, ok := readClaim(t, ctx, "pc-y1.service"); !ok || code != 0 {
		t.Fatalf("release must keep the claim while 7201 is held (exit %d)", code)
	}
	userctl(t, ctx, "alice", "disable", "--now", "podman-y1.service")
	if out, code = portclaim(t, ctx, "alice", nil, "resolve", "--manifest", empty); code != 0 {
		t.Fatalf("resolve with the service removed: exit %d\n%s", code, out)
	}
	out, code = portclaim(t, ctx, "alice", nil, "release", "--manifest", empty)
	if code != 0 {
		t.Fatalf("release exit %d\n%s", code, out)
	}
	contains(t, "release output", out, "released pc-y1.service: claim removed, started again and holds 7201/tcp")
	if _, ok := readClaim(t, ctx, "pc-y1.service"); ok {
		t.Fatal("the claim file is still there after release")
	}
	if s := isActive(ctx, "pc-y1.service"); s != "active" {
		t.Fatalf("pc-y1.service is %s after release", s)
	}
	who := must(t, ctx, "root", "portclaim", "who", "7201")
	contains(t, "portclaim who 7201", who, "127.0.0.1:7201: system pc-y1.service")
	// Both actions are in the journal with structured fields.
	journal := must(t, ctx, "root", "journalctl", "--no-pager", "-o", "cat", "PORTCLAIM_UNIT=pc-y1.service")
	contains(t, "journal", journal, "claim pc-y1.service: done", "stop pc-y1.service: done", "unclaim pc-y1.service: done", "start pc-y1.service: done")
	log := must(t, ctx, "root", "cat", "/home/alice/.local/state/portclaim/portclaim.log")
	contains(t, "alice's portclaim.log", log, "action=stop unit=pc-y1.service ports=7201/tcp result=done")
}

func TestUnitNotInThePolicyIsLeftAlone(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-np.service", "", true, false, "tcp4:127.0.0.1:7202")
	refusedUnchanged(t, ctx, "np", "pc-np.service", 7202, nil,
		`services.portclaim.yield."pc-np.service".users = [ "alice" ];`, "services.pc-np.enable = false;", "nothing was changed",
		`services.podman.containers.np.ports = [ "7203:7202" ];`)
}

// refusedUnchanged runs resolve as alice on a one-service manifest for
// unit on port, with env: it must exit 0, say each of wants, change
// neither the unit nor the claims directory, and exit 1 when strict.
func refusedUnchanged(t *testing.T, ctx context.Context, name, unit string, port int, env []string, wants ...string) {
	t.Helper()
	body := oneService(name, unit, "podman-"+name+".service", port, "")
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
	strict := manifest(t, name+"-strict", strings.Replace(body, `"version":1,`, `"version":1,"strict":true,`, 1))
	if out, code := portclaim(t, ctx, "alice", env, "resolve", "--manifest", strict); code != 1 {
		t.Errorf("strict resolve exit %d, want 1\n%s", code, out)
	}
}

func TestWithoutThePolkitRuleNothingChanges(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-y2.service", "", true, false, "tcp4:127.0.0.1:7204")
	must(t, ctx, "root", "mv", polkitRulePath, polkitRulePath+".off")
	t.Cleanup(func() { m.Run(context.Background(), "root", "mv", polkitRulePath+".off", polkitRulePath) })
	time.Sleep(500 * time.Millisecond) // polkitd reloads its rules on inotify
	refusedUnchanged(t, ctx, "y2", "pc-y2.service", 7204, nil,
		"systemd refused to stop it", `services.portclaim.yield."pc-y2.service".users = [ "alice" ];`, "its claim was removed again")
}

func TestDryRunChangesNothing(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-dry.service", "", true, true, "tcp4:127.0.0.1:7205")
	path := manifest(t, "dry", oneService("dry", "pc-dry.service", "podman-dry.service", 7205, ""))
	before := state(t, ctx, "pc-dry.service")
	out, _ := portclaim(t, ctx, "alice", nil, "resolve", "--dry-run", "--manifest", path)
	contains(t, "resolve --dry-run", out, "would", "yield pc-dry.service to alice", "stop pc-dry.service")
	out, _ = portclaim(t, ctx, "alice", []string{"DRY_RUN=1"}, "resolve", "--manifest", path)
	contains(t, "DRY_RUN=1 resolve", out, "would")
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
	contains(t, "resolve output", out, "no terminal to ask", "reporting only")
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
	if code != 0 {
		t.Fatalf("second resolve exit %d\n%s", code, out)
	}
	contains(t, "second resolve", out, "ports are free")
	if after := state(t, ctx, "pc-twice.service"); after != before {
		t.Errorf("the second resolve changed something:\n%s\n---\n%s", before, after)
	}
}

func TestKilledAfterWritingTheClaimConverges(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-crash.service", "", true, false, "tcp4:127.0.0.1:7208")
	path := manifest(t, "crash", oneService("crash", "pc-crash.service", "podman-crash.service", 7208, ""))
	out, code := portclaim(t, ctx, "alice", []string{"PORTCLAIM_TEST_CRASH=after-claim"}, "resolve", "--manifest", path)
	if code == 0 {
		t.Fatalf("the crash hook did not kill portclaim:\n%s", out)
	}
	first, ok := readClaim(t, ctx, "pc-crash.service")
	if !ok || isActive(ctx, "pc-crash.service") != "active" {
		t.Fatalf("after the kill: claim %v, unit %s; want a claim and the unit still active", ok, isActive(ctx, "pc-crash.service"))
	}
	out, code = portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path)
	if code != 0 || isActive(ctx, "pc-crash.service") != "inactive" {
		t.Fatalf("the next run did not converge: exit %d, unit %s\n%s", code, isActive(ctx, "pc-crash.service"), out)
	}
	again, _ := readClaim(t, ctx, "pc-crash.service")
	if !again.ClaimedAt.Equal(first.ClaimedAt) || again.Prior.ActiveState != "active" {
		t.Errorf("the converging run rewrote the claim: %+v, first %+v", again, first)
	}
}

func TestHangingExecStopIsBounded(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-hang.service", "ExecStop=/bin/sleep 120\nTimeoutStopSec=300", true, false, "tcp4:127.0.0.1:7209")
	t.Cleanup(func() {
		m.Run(context.Background(), "root", "systemctl", "kill", "--signal=SIGKILL", "pc-hang.service")
	})
	path := manifest(t, "hang", oneService("hang", "pc-hang.service", "podman-hang.service", 7209, ""))
	start := time.Now()
	out, code := portclaim(t, ctx, "alice", nil, "resolve", "--wait", "3s", "--manifest", path)
	took := time.Since(start)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	contains(t, "resolve output", out, "did not finish within 3s", "its claim was removed again")
	if took > 20*time.Second {
		t.Errorf("resolve took %s with --wait 3s", took)
	}
	if _, ok := readClaim(t, ctx, "pc-hang.service"); ok {
		t.Error("the claim stayed after a stop that did not finish")
	}
	if s := isActive(ctx, "pc-hang.service"); s != "deactivating" {
		t.Errorf("pc-hang.service is %s, want deactivating (systemd is still running ExecStop)", s)
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
	contains(t, "resolve output", out, "yielded  pc-sock.socket and pc-sock.service to alice", "7210/tcp free")
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
	contains(t, "resolve output", out, "does not let pc-half.socket yield to alice", `services.portclaim.yield."pc-half.socket".users = [ "alice" ];`)
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
	out, code := portclaim(t, ctx, "root", nil, "resolve", "--user", "alice", "--manifest", path)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	contains(t, "root resolve", out, "yielded  pc-root.service to alice", "masked in /run/systemd/transient")
	if link := must(t, ctx, "root", "readlink", "/run/systemd/transient/pc-root.service"); strings.TrimSpace(link) != "/dev/null" {
		t.Fatalf("transient mask link -> %q", link)
	}
	// Root's mask claims live where users cannot write (and forge them).
	if c, ok := readClaimIn(t, ctx, claimsDir+"/.masks/alice", "pc-root.service"); !ok || c.Method != "transient-mask" {
		t.Fatalf("claim %+v (exists %v), want method transient-mask in %s/.masks/alice", c, ok, claimsDir)
	}
	if owner := must(t, ctx, "root", "stat", "-c", "%U %a", claimsDir+"/.masks"); strings.TrimSpace(owner) != "root 755" {
		t.Errorf("%s/.masks is %q, want root's", claimsDir, owner)
	}
	if r := m.Run(ctx, "root", "systemctl", "start", "pc-root.service"); r.ExitCode == 0 || isActive(ctx, "pc-root.service") != "inactive" {
		t.Fatalf("systemctl start brought the root-claimed unit back\n%s", r)
	}
	empty := manifest(t, "root-removed", `{"version":1,"services":[]}`)
	out, code = portclaim(t, ctx, "root", nil, "release", "--user", "alice", "--manifest", empty)
	if code != 0 || isActive(ctx, "pc-root.service") != "active" {
		t.Fatalf("release: exit %d, unit %s\n%s", code, isActive(ctx, "pc-root.service"), out)
	}
	if r := m.Run(ctx, "root", "test", "-e", "/run/systemd/transient/pc-root.service"); r.ExitCode == 0 {
		t.Error("release left the mask behind")
	}
}

func TestStatusShowsClaimsAndHolders(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-dry.service", "", true, false, "tcp4:127.0.0.1:7205")
	path := manifest(t, "status", oneService("dry", "pc-dry.service", "podman-dry.service", 7205, ""))
	portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path)
	out, _ := portclaim(t, ctx, "alice", nil, "status")
	contains(t, "status", out, "policy: "+policyPath, "may yield: pc-dry.service (alice)", "claim: pc-dry.service yields to alice", "7205/tcp: free")
	rootOut, _ := portclaim(t, ctx, "root", nil, "status")
	contains(t, "root status", rootOut, "claim: pc-dry.service yields to alice")
}

// TestForgedClaimsAreNotActedOn: alice's claims directory is hers to
// write. A claim file there for a unit the policy does not let yield to
// her, or pretending to be root's transient mask, makes nobody start,
// stop or unmask anything, not even root releasing everything for her.
func TestForgedClaimsAreNotActedOn(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-forge.service", "", false, false, "tcp4:127.0.0.1:7222")
	systemUnit(t, ctx, "pc-y2.service", "", true, false, "tcp4:127.0.0.1:7223")
	must(t, ctx, "root", "sh", "-c", "mkdir -p /run/systemd/transient && ln -sf /dev/null /run/systemd/transient/pc-y2.service")
	t.Cleanup(func() { m.Run(context.Background(), "root", "rm", "-f", "/run/systemd/transient/pc-y2.service") })
	forged := map[string]string{
		"pc-forge.service": `{"version":1,"service":"x","prior":{"activeState":"active"}}`,
		"pc-y2.service":    `{"version":1,"service":"y","method":"transient-mask","prior":{"activeState":"inactive"}}`,
		"poweroff.target":  `{"version":1,"service":"z","prior":{"activeState":"active"}}`,
	}
	for unit := range forged {
		t.Cleanup(func() { m.Run(context.Background(), "root", "rm", "-f", claimsDir+"/alice/"+unit) })
	}
	empty := manifest(t, "forge", `{"version":1,"services":[]}`)
	for _, r := range []runner{{"root", "root", []string{"--user", "alice"}}, {"alice", "alice", nil}} {
		for unit, body := range forged {
			if err := m.WriteFile(claimsDir+"/alice/"+unit, []byte(body), 0o644, "alice"); err != nil {
				t.Fatal(err)
			}
		}
		out, code := portclaim(t, ctx, r.user, nil, append([]string{"release", "--all", "--manifest", empty}, r.extra...)...)
		if code != 0 {
			t.Fatalf("as %s: exit %d\n%s", r.name, code, out)
		}
		if s := isActive(ctx, "pc-forge.service"); s != "inactive" {
			t.Fatalf("as %s: a forged claim got pc-forge.service started (%s)\n%s", r.name, s, out)
		}
		if link := m.Run(ctx, "root", "readlink", "/run/systemd/transient/pc-y2.service"); strings.TrimSpace(link.Stdout) != "/dev/null" {
			t.Fatalf("as %s: a forged mask claim got root's mask removed\n%s", r.name, out)
		}
		if s := strings.TrimSpace(must(t, ctx, "root", "systemctl", "is-system-running")); s != "running" && s != "degraded" {
			t.Fatalf("as %s: the system is %s", r.name, s)
		}
	}
}

// TestWithoutTheSystemBusNothingChanges: check still reports what it can
// see (exit 3); resolve changes nothing, says why, and exits 0 (1 strict).
func TestWithoutTheSystemBusNothingChanges(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-nobus.service", "", true, false, "tcp4:127.0.0.1:7224")
	path := manifest(t, "nobus-check", oneService("nobus", "pc-nobus.service", "podman-nobus.service", 7224, ""))
	noBus := []string{"DBUS_SYSTEM_BUS_ADDRESS=unix:path=/run/nonexistent-bus"}
	res := m.RunEnv(ctx, "alice", noBus, "portclaim", "check", "--json", "--manifest", path)
	var doc report.Doc
	if err := json.Unmarshal([]byte(res.Stdout), &doc); err != nil || res.ExitCode != 3 {
		t.Fatalf("check without the system bus: want exit 3 and the JSON report\n%s", res)
	}
	if len(doc.Errors) == 0 || !strings.Contains(doc.Errors[0], "system bus") || len(doc.Conflicts) != 1 || doc.Conflicts[0].Holder.Unit != "pc-nobus.service" {
		t.Errorf("want the system bus named as the problem and the conflict still seen\n%s", res)
	}
	refusedUnchanged(t, ctx, "nobus", "pc-nobus.service", 7224, noBus, "nothing was changed", "system bus")
}
