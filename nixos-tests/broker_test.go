package e2e

// Scenarios of the trust boundary: the root broker against a second,
// hostile user, against faults at each step, and against inputs meant to
// hang or exhaust it. Each one reproduces a finding the broker fixes.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portclaim/portclaim/nixos-tests/fixture"
)

// TestJobModeEscapesAreRefused: with the old polkit grant, alice could
// stop a unit with job mode "triggering" (taking down what triggers it)
// or start one with "flush" (cancelling root's queued jobs). Now she has
// no grant at all: systemd refuses every job she asks for herself.
func TestJobModeEscapesAreRefused(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-escape.service", "", true, false, "tcp4:127.0.0.1:7230")
	for _, call := range [][]string{
		{"StopUnit", "ss", "pc-escape.service", "triggering"},
		{"StopUnit", "ss", "pc-escape.service", "replace"},
		{"StartUnit", "ss", "pc-escape.service", "flush"},
		{"RestartUnit", "ss", "pc-escape.service", "replace"},
	} {
		args := append([]string{"busctl", "call", "--allow-interactive-authorization=no", "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
			"org.freedesktop.systemd1.Manager"}, call...)
		r := m.Run(ctx, "alice", args...)
		// polkitd answers: alice has no grant, so systemd would have to
		// ask (and may not). "Access denied" alone would also be the
		// answer of a machine without polkitd, proving nothing.
		if r.ExitCode == 0 || !strings.Contains(r.Stderr, "Interactive authentication required") {
			t.Errorf("alice's %s %s: %s", call[0], call[3], r)
		}
	}
	if s := isActive(ctx, "pc-escape.service"); s != "active" {
		t.Errorf("pc-escape.service is %s after alice's attempts", s)
	}
}

// TestDependentsRefuseThenYieldWithPolicy: units that Requires=, BindsTo=
// or are PartOf= the yielding unit are stopped with it by systemd. A
// dependent the policy does not name makes the broker refuse, naming it
// and the line that would allow it; with every dependent in the policy
// they yield together, and release brings them all back.
func TestDependentsRefuseThenYieldWithPolicy(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-refuse.service", "", true, false, "tcp4:127.0.0.1:7231")
	installUnit(t, ctx, "pc-refuse-dep.service", "Requires=pc-refuse.service\nAfter=pc-refuse.service\n[Service]\nExecStart=/bin/sleep infinity\n", false)
	must(t, ctx, "root", "systemctl", "start", "pc-refuse-dep.service")
	path := manifest(t, "refuse", oneService("refuse", "pc-refuse.service", "podman-refuse.service", 7231, ""))
	before := state(t, ctx, "pc-refuse.service", "pc-refuse-dep.service")
	out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	contains(t, "resolve output", out, "refused:", "would also stop pc-refuse-dep.service (it depends on pc-refuse.service)",
		`services.portclaim.yield."pc-refuse-dep.service".users = [ "alice" ];`, "nothing was changed")
	if after := state(t, ctx, "pc-refuse.service", "pc-refuse-dep.service"); after != before {
		t.Errorf("a refused yield changed something:\n%s\n---\n%s", before, after)
	}

	systemUnit(t, ctx, "pc-dep.service", "", true, false, "tcp4:127.0.0.1:7232")
	deps := map[string]string{
		"pc-dep-req.service":  "Requires=pc-dep.service\nAfter=pc-dep.service",
		"pc-dep-bind.service": "BindsTo=pc-dep.service\nAfter=pc-dep.service",
		"pc-dep-part.service": "PartOf=pc-dep.service\nAfter=pc-dep.service",
	}
	for name, dep := range deps {
		installUnit(t, ctx, name, dep+"\n[Service]\nExecStart=/bin/sleep infinity\n", false)
		must(t, ctx, "root", "systemctl", "start", name)
	}
	path = manifest(t, "dep", oneService("dep", "pc-dep.service", "podman-dep.service", 7232, ""))
	out, code = portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	for name := range deps {
		contains(t, "resolve output", out, fmt.Sprintf("yielded  %s to alice (stopped with pc-dep.service, which it depends on): stopped and claimed", name))
		if s := isActive(ctx, name); s != "inactive" {
			t.Errorf("%s is %s", name, s)
		}
		if c, ok := readClaim(t, ctx, name); !ok || c.With != "pc-dep.service" || c.Prior.ActiveState != "active" {
			t.Errorf("claim on %s: %+v (exists %v)", name, c, ok)
		}
	}
	empty := manifest(t, "dep-removed", `{"version":1,"services":[]}`)
	out, _ = portclaim(t, ctx, "alice", nil, "release", "--manifest", empty)
	for _, u := range []string{"pc-dep.service", "pc-dep-req.service", "pc-dep-bind.service", "pc-dep-part.service"} {
		if s := isActive(ctx, u); s != "active" {
			t.Errorf("%s is %s after release\n%s", u, s, out)
		}
	}
	if strings.Index(out, "released pc-dep.service") > strings.Index(out, "released pc-dep-req.service") {
		t.Errorf("release started a dependent before the unit it depends on:\n%s", out)
	}
}

// TestNoUserCanBlockAnother: bob opens and locks every file and directory
// he can under the claims directory and /run/portclaim, and holds two
// connections to the broker open; alice's resolve and release still work.
func TestNoUserCanBlockAnother(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-block.service", "", true, false, "tcp4:127.0.0.1:7233")
	path := manifest(t, "block", oneService("block", "pc-block.service", "podman-block.service", 7233, ""))
	must(t, ctx, "root", "mkdir", "-p", claimsDir+"/alice", claimsDir+"/bob")
	// What bob can open, he locks (shared, else exclusive), for a minute,
	// and he holds as many silent connections to the broker as it lets
	// one user have.
	// Each lock says when it is taken (or that bob could take none), each
	// connection when it is made: alice goes on once all of them have.
	files := strings.Fields(must(t, ctx, "bob", "sh", "-c", "find "+claimsDir+" /run/portclaim 2>/dev/null || true"))
	must(t, ctx, "bob", "sh", "-c", `rm -f /tmp/bob.locks; for f in $(find `+claimsDir+` /run/portclaim 2>/dev/null); do
		(flock -n -s "$f" sh -c 'echo locked >> /tmp/bob.locks; exec sleep 60' ||
			flock -n "$f" sh -c 'echo locked >> /tmp/bob.locks; exec sleep 60' ||
			echo none >> /tmp/bob.locks) </dev/null >/dev/null 2>&1 &
		echo $! >> /tmp/bob.pids
	done
	holdport dial:/run/portclaim/broker.sock dial:/run/portclaim/broker.sock >/tmp/bob.dials 2>&1 &
	echo $! >> /tmp/bob.pids`)
	t.Cleanup(func() {
		// bob's locks and connections go; the broker has answered his
		// silent ones (its read timeout) before the next test asks for him.
		ctx := context.Background()
		m.Run(ctx, "root", "sh", "-c", "kill $(cat /tmp/bob.pids); rm -f /tmp/bob.pids /tmp/bob.locks /tmp/bob.dials /tmp/nobody.dials")
		m.Run(ctx, "root", "systemctl", "stop", "portclaim.service")
	})
	// And uids with no user name (a rootless container's subordinate
	// uids, which bob could use) hold forty more; they take no place.
	dial := strings.Repeat("dial:/run/portclaim/broker.sock ", 40)
	must(t, ctx, "root", "sh", "-c", "setpriv --reuid=200000 --regid=200000 --clear-groups holdport "+dial+
		" >/tmp/nobody.dials 2>&1 & echo $! >> /tmp/bob.pids")
	waitFor(t, ctx, "root", fmt.Sprintf("test $(cat /tmp/bob.locks | wc -l) -ge %d && test $(grep -c '^listening dial' /tmp/bob.dials) -eq 2 && test $(grep -c '^listening dial' /tmp/nobody.dials) -eq 40", len(files)))
	if r := m.Run(ctx, "bob", "sh", "-c", "exec 9>"+claimsDir+"/.lock"); r.ExitCode == 0 {
		t.Error("bob opened the broker's lock file")
	}
	out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path)
	if code != 0 || isActive(ctx, "pc-block.service") != "inactive" {
		t.Fatalf("alice's resolve while bob locks everything: exit %d, unit %s\n%s", code, isActive(ctx, "pc-block.service"), out)
	}
	out, _ = portclaim(t, ctx, "alice", nil, "release", "--all")
	if isActive(ctx, "pc-block.service") != "active" {
		t.Fatalf("alice's release while bob locks everything:\n%s", out)
	}
}

// TestRootWithAUsersEnvironmentWritesNothingOutside: root keeps alice's
// HOME and XDG_* (sudo -E, su), and alice has pointed her state and
// config at root's files. Root's runs for her follow none of it.
func TestRootWithAUsersEnvironmentWritesNothingOutside(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-env.service", "", true, false, "tcp4:127.0.0.1:7234")
	must(t, ctx, "alice", "sh", "-c", `mkdir -p ~/.local/state ~/.config/portclaim && rm -rf ~/.local/state/portclaim &&
		ln -s /etc ~/.local/state/portclaim && ln -sf /etc/shadow ~/.config/portclaim/manifest.json`)
	t.Cleanup(func() {
		m.Run(context.Background(), "alice", "sh", "-c", "rm -rf ~/.local/state/portclaim ~/.config/portclaim")
	})
	motd := must(t, ctx, "root", "sha256sum", "/etc/motd")
	env := []string{"HOME=/home/alice", "XDG_STATE_HOME=/home/alice/.local/state", "XDG_CONFIG_HOME=/home/alice/.config", "XDG_RUNTIME_DIR=/run/user/1000"}
	path := manifest(t, "env", oneService("env", "pc-env.service", "podman-env.service", 7234, ""))
	out, code := portclaim(t, ctx, "root", env, "resolve", "--user", "alice", "--yes", "--manifest", path)
	if code != 0 || isActive(ctx, "pc-env.service") != "inactive" {
		t.Fatalf("root resolve for alice: exit %d\n%s", code, out)
	}
	portclaim(t, ctx, "root", env, "release", "--user", "alice", "--all")
	portclaim(t, ctx, "root", env, "status")
	// Without --manifest, root reads alice's manifest from her home,
	// and refuses the link to /etc/shadow.
	out, code = portclaim(t, ctx, "root", env, "check", "--user", "alice")
	if code != 2 || !strings.Contains(out, "follows links in a user's directory only into /nix/store") || strings.Contains(out, "root:") {
		t.Errorf("root reading alice's manifest link to /etc/shadow: exit %d\n%s", code, out)
	}
	if after := must(t, ctx, "root", "sha256sum", "/etc/motd"); after != motd {
		t.Error("/etc/motd changed")
	}
	if r := m.Run(ctx, "root", "sh", "-c", "ls /etc/last-run.json /etc/portclaim.log /etc/nologin 2>/dev/null"); strings.TrimSpace(r.Stdout) != "" {
		t.Errorf("root wrote through alice's links: %s", r.Stdout)
	}
	if r := m.Run(ctx, "root", "find", "/home/alice", "-user", "root"); strings.TrimSpace(r.Stdout) != "" {
		t.Errorf("root left files in alice's home: %s", r.Stdout)
	}
}

// TestTwoUsersClaimOneUnit: a unit stays down while any user's claim on
// it exists, keeps the state the first claim recorded, and comes back
// when the last claim goes.
func TestTwoUsersClaimOneUnit(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-shared.service", "", true, true, "tcp4:127.0.0.1:7235")
	path := manifest(t, "shared2", oneService("shared", "pc-shared.service", "podman-shared.service", 7235, ""))
	if out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path); code != 0 || isActive(ctx, "pc-shared.service") != "inactive" {
		t.Fatalf("alice's resolve: exit %d\n%s", code, out)
	}
	// For bob it is stopped but enabled: latent; his claim keeps it down
	// too, with the state alice's claim recorded.
	out, code := portclaim(t, ctx, "bob", nil, "resolve", "--manifest", path)
	if code != 0 {
		t.Fatalf("bob's resolve: exit %d\n%s", code, out)
	}
	c, ok := readClaimIn(t, ctx, claimsDir+"/bob", "pc-shared.service")
	if !ok || c.Prior.ActiveState != "active" {
		t.Fatalf("bob's claim %+v (exists %v): want the prior state of alice's first claim, active\n%s", c, ok, out)
	}
	out, _ = portclaim(t, ctx, "alice", nil, "release", "--all")
	contains(t, "alice's release", out, "pc-shared.service", "it stays down: bob's claim keeps it")
	if s := isActive(ctx, "pc-shared.service"); s != "inactive" {
		t.Fatalf("alice's release started the unit bob still claims (%s)", s)
	}
	afterSwitches(t, ctx)
	out, _ = portclaim(t, ctx, "bob", nil, "release", "--all")
	if s := isActive(ctx, "pc-shared.service"); s != "active" {
		t.Fatalf("the last release did not bring pc-shared.service back (%s)\n%s", s, out)
	}
}

// TestStartFailureKeepsTheRecord: a release whose start fails keeps the
// record, with the error, where status shows it; the next release after
// the fix brings the unit back and only then removes the record.
func TestStartFailureKeepsTheRecord(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-fail.service", "ExecStartPre=/bin/sh -c 'test ! -e /run/pc-fail-broken'", true, false, "tcp4:127.0.0.1:7236")
	t.Cleanup(func() { m.Run(context.Background(), "root", "rm", "-f", "/run/pc-fail-broken") })
	path := manifest(t, "fail", oneService("fail", "pc-fail.service", "podman-fail.service", 7236, ""))
	if out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path); code != 0 || isActive(ctx, "pc-fail.service") != "inactive" {
		t.Fatalf("resolve: exit %d\n%s", code, out)
	}
	must(t, ctx, "root", "touch", "/run/pc-fail-broken")
	out, code := portclaim(t, ctx, "alice", nil, "release", "--all")
	contains(t, "failing release", out, "failed   pc-fail.service: starting it:", "its record stays", "the next release or reconcile tries again")
	if code != 0 {
		t.Errorf("release exit %d, want 0 (not strict)", code)
	}
	c, ok := readClaimIn(t, ctx, claimsDir+"/alice/.releasing", "pc-fail.service")
	if !ok || c.Release == nil || c.Release.LastError == "" || c.Prior.ActiveState != "active" {
		t.Fatalf("the record of the failed release: %+v (exists %v)", c, ok)
	}
	st, _ := portclaim(t, ctx, "alice", nil, "status")
	contains(t, "status", st, "pc-fail.service", "being released, the unit not back yet: starting it:")
	must(t, ctx, "root", "rm", "/run/pc-fail-broken")
	out, _ = portclaim(t, ctx, "alice", nil, "release", "--all")
	if s := isActive(ctx, "pc-fail.service"); s != "active" {
		t.Fatalf("the release after the fix: %s\n%s", s, out)
	}
	if _, ok := readClaimIn(t, ctx, claimsDir+"/alice/.releasing", "pc-fail.service"); ok {
		t.Error("the record stayed after the unit came back")
	}
}

// brokerCrashAt makes the broker kill itself at point (fault injection
// through its unit's environment, which only root sets) until undone.
func brokerCrashAt(t *testing.T, ctx context.Context, point string) func() {
	t.Helper()
	dropin := "/etc/systemd/system/portclaim.service.d/crash.conf"
	if err := m.WriteFile(dropin, []byte("[Service]\nEnvironment=PORTCLAIM_TEST_CRASH="+point+"\n"), 0o644, ""); err != nil {
		t.Fatal(err)
	}
	// A broker still running from an earlier request keeps its old
	// environment: stop it; the socket starts the new one.
	must(t, ctx, "root", "systemctl", "daemon-reload")
	must(t, ctx, "root", "systemctl", "stop", "portclaim.service")
	undo := func() {
		ctx := context.Background()
		os.Remove(filepath.Join(m.Root(), dropin))
		m.Run(ctx, "root", "systemctl", "daemon-reload")
		m.Run(ctx, "root", "systemctl", "stop", "portclaim.service")
		m.Run(ctx, "root", "systemctl", "reset-failed", "portclaim.service")
	}
	t.Cleanup(undo)
	return undo
}

// TestKilledAtEachStepConverges: the broker killed after writing a claim
// and before stopping, killed after moving a record aside and before the
// start, and the client killed while the broker works: each time the next
// run converges, and no unit is ever down without its record.
func TestKilledAtEachStepConverges(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-crash.service", "", true, false, "tcp4:127.0.0.1:7208")
	path := manifest(t, "crash", oneService("crash", "pc-crash.service", "podman-crash.service", 7208, ""))

	undo := brokerCrashAt(t, ctx, "after-claim")
	out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path)
	contains(t, "resolve when the broker dies", out, "reading the broker's answer")
	first, ok := readClaim(t, ctx, "pc-crash.service")
	if !ok || isActive(ctx, "pc-crash.service") != "active" || code != 0 {
		t.Fatalf("after the kill: claim %v, unit %s, exit %d; want the claim written and the unit still active", ok, isActive(ctx, "pc-crash.service"), code)
	}
	undo()
	out, code = portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path)
	if code != 0 || isActive(ctx, "pc-crash.service") != "inactive" {
		t.Fatalf("the next run did not converge: exit %d, unit %s\n%s", code, isActive(ctx, "pc-crash.service"), out)
	}
	if again, _ := readClaim(t, ctx, "pc-crash.service"); !again.ClaimedAt.Equal(first.ClaimedAt) || again.Prior.ActiveState != "active" {
		t.Errorf("the converging run rewrote the claim: %+v, first %+v", again, first)
	}

	undo = brokerCrashAt(t, ctx, "after-begin-release")
	portclaim(t, ctx, "alice", nil, "release", "--all")
	if _, ok := readClaimIn(t, ctx, claimsDir+"/alice/.releasing", "pc-crash.service"); !ok || isActive(ctx, "pc-crash.service") != "inactive" {
		t.Fatalf("killed between moving the record aside and the start: want the unit down with its record in .releasing (unit %s)", isActive(ctx, "pc-crash.service"))
	}
	undo()
	// Reconcile, at the next boot or switch, finishes it (as would the
	// user's next release).
	out, code = portclaim(t, ctx, "root", nil, "reconcile")
	if code != 0 || isActive(ctx, "pc-crash.service") != "active" {
		t.Fatalf("reconcile after the kill: exit %d, unit %s\n%s", code, isActive(ctx, "pc-crash.service"), out)
	}
	if _, ok := readClaimIn(t, ctx, claimsDir+"/alice/.releasing", "pc-crash.service"); ok {
		t.Error("the record stayed after reconcile brought the unit back")
	}

	// The client killed while the broker works: the broker finishes.
	// Killed while the broker stops the unit (its stop waits at a gate).
	systemUnit(t, ctx, "pc-client.service", "TimeoutStopSec=5min", true, false, "tcp4:127.0.0.1:7237")
	stop := newGate(t, ctx, "client")
	addDropIn(t, ctx, "pc-client.service", "[Service]\nExecStop="+stop.Wait()+"\n")
	cpath := manifest(t, "client", oneService("client", "pc-client.service", "podman-client.service", 7237, ""))
	t.Cleanup(func() { m.Run(context.Background(), "root", "rm", "-f", "/tmp/client.pid") })
	must(t, ctx, "alice", "sh", "-c", "portclaim resolve --manifest "+cpath+" >/dev/null 2>&1 & echo $! > /tmp/client.pid")
	waitFor(t, ctx, "root", `test "$(systemctl show -P ActiveState pc-client.service)" = deactivating`)
	must(t, ctx, "alice", "sh", "-c", "kill -9 $(cat /tmp/client.pid)")
	stop.Open(t, ctx)
	waitUntil(t, ctx, "the broker finishing the stop after its client was killed", func() (bool, string) {
		s := isActive(ctx, "pc-client.service")
		return s == "inactive", s
	})
	if _, ok := readClaim(t, ctx, "pc-client.service"); !ok {
		t.Fatal("pc-client.service is down without a record")
	}
}

// TestHangingBusPeerEndsWithinTimeout: a bus socket that accepts and
// never answers, as the system bus (DBUS_SYSTEM_BUS_ADDRESS) or as a
// user's systemd/private while root checks that user: every run ends
// within its --timeout, and says so.
func TestHangingBusPeerEndsWithinTimeout(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-hangbus.service", "", true, false, "tcp4:127.0.0.1:7238")
	must(t, ctx, "alice", "sh", "-c", "holdport unix:/tmp/hang.sock >/dev/null 2>&1 & echo $! > /tmp/hang.pid")
	t.Cleanup(func() {
		m.Run(context.Background(), "alice", "sh", "-c", "kill $(cat /tmp/hang.pid); rm -f /tmp/hang.sock")
	})
	waitFor(t, ctx, "alice", "test -S /tmp/hang.sock")
	path := manifest(t, "hangbus", oneService("hangbus", "pc-hangbus.service", "podman-hangbus.service", 7238, ""))
	hang := []string{"DBUS_SYSTEM_BUS_ADDRESS=unix:path=/tmp/hang.sock"}
	for _, args := range [][]string{{"check", "--timeout", "3s", "--manifest", path}, {"resolve", "--timeout", "3s", "--manifest", path}} {
		start := time.Now()
		out, code := portclaim(t, ctx, "alice", hang, args...)
		// Without its deadline it would hang for ever: a minute tells the
		// two apart on a busy machine too.
		if took := time.Since(start); took > time.Minute {
			t.Errorf("%s with a hanging system bus took %s", args[0], took)
		}
		want := map[string]int{"check": 3, "resolve": 0}[args[0]]
		if code != want || !strings.Contains(out, "system bus") {
			t.Errorf("%s: exit %d, want %d and the bus named\n%s", args[0], code, want, out)
		}
	}

	// alice swaps her manager's private socket for a hanging one while
	// root checks her claims.
	userUnit(t, ctx, "alice", "podman-hangbus.service", "tcp::7238")
	must(t, ctx, "alice", "sh", "-c", "cd /run/user/1000/systemd && mv private private.real && "+
		"(holdport unix:/run/user/1000/systemd/private >/dev/null 2>&1 & echo $! > /tmp/hang2.pid)")
	t.Cleanup(func() {
		ctx := context.Background()
		// holdport unlinks its socket as it exits: the real one goes back
		// only once it has (on a busy machine it exited after the move,
		// and took alice's manager's socket with it for every later test).
		m.Run(ctx, "alice", "sh", "-c", "pid=$(cat /tmp/hang2.pid); kill $pid; while kill -0 $pid 2>/dev/null; do sleep 0.05; done; "+
			"cd /run/user/1000/systemd && rm -f private && mv private.real private")
	})
	waitFor(t, ctx, "alice", "test -S /run/user/1000/systemd/private")
	start := time.Now()
	out, code := portclaim(t, ctx, "root", nil, "check", "--user", "alice", "--timeout", "3s", "--manifest", path)
	if took := time.Since(start); took > time.Minute || code == 0 {
		t.Errorf("root's check of alice with her private socket hanging: %s, exit %d\n%s", took, code, out)
	}
}

// waitFor waits until the shell condition cond, run as user, holds.
func waitFor(t *testing.T, ctx context.Context, user, cond string) {
	t.Helper()
	waitUntil(t, ctx, cond, func() (bool, string) {
		r := m.Run(ctx, user, "sh", "-c", cond)
		return r.ExitCode == 0, r.String()
	})
}

// TestHostileManifests: a manifest nested ten million levels deep, one
// with 100,000 services, one with a key given twice: each ends with exit
// 2 within seconds, under a memory limit a sane run never nears.
func TestHostileManifests(t *testing.T) {
	ctx := need(t)
	var many strings.Builder
	many.WriteString(`{"version":2,"services":[`)
	for i := 0; i < 100000; i++ {
		if i > 0 {
			many.WriteByte(',')
		}
		fmt.Fprintf(&many, `{"name":"s%d","userUnits":["u%d.service"],"ports":[{"port":6333}]}`, i, i)
	}
	many.WriteString(`]}`)
	cases := []struct{ name, body, want string }{
		{"nested", strings.Repeat("[", 10<<20), "is larger than portclaim reads"},
		{"nested-small", strings.Repeat("[", 100000), "nested more than 8 levels"},
		{"many", many.String(), "is larger than portclaim reads"},
		{"dupkey", `{"version":2,"services":[{"name":"a","userUnits":["a.service"],"ports":[{"port":1,"port":70000}]}]}`, "is given twice in one object"},
	}
	for _, c := range cases {
		path := "/etc/portclaim-test/hostile-" + c.name + ".json"
		if err := m.WriteFile(path, []byte(c.body), 0o644, ""); err != nil {
			t.Fatal(err)
		}
		for _, cmd := range [][]string{{"validate", path}, {"check", "--manifest", path}} {
			start := time.Now()
			// In a cgroup of 64 MB, without swap, as alice: a run that
			// reads what it should not would be killed, not answer.
			r := m.Run(ctx, "root", append([]string{"systemd-run", "--quiet", "--wait", "--pipe", "--uid=alice",
				"-p", "MemoryMax=64M", "-p", "MemorySwapMax=0", "/usr/local/bin/portclaim"}, cmd...)...)
			// Seconds, not the minutes a parse of all of it would take
			// (were it not killed first), on a busy machine too.
			if took := time.Since(start); took > 30*time.Second {
				t.Errorf("%s %s took %s", cmd[0], c.name, took)
			}
			if r.ExitCode != 2 || !strings.Contains(r.Stderr, c.want) {
				t.Errorf("%s %s: want exit 2 and %q\n%s", cmd[0], c.name, c.want, r)
			}
		}
	}
}

// TestStaleClaimsAreGivenBack: a nixos-rebuild switch that drops a unit
// from the policy, and a user removed from the system, give the port
// back: reconcile (rerun by the switch, run at boot) releases what the
// policy no longer allows.
func TestStaleClaimsAreGivenBack(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-drop.service", "", true, true, "tcp4:127.0.0.1:7239")
	path := manifest(t, "drop", oneService("drop", "pc-drop.service", "podman-drop.service", 7239, ""))
	if out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path); code != 0 || isActive(ctx, "pc-drop.service") != "inactive" {
		t.Fatalf("resolve: exit %d\n%s", code, out)
	}
	switchToPolicyWithout(t, ctx, "pc-drop.service")
	if s := isActive(ctx, "pc-drop.service"); s != "active" {
		t.Errorf("after the switch dropped pc-drop.service from the policy it is %s", s)
	}
	if _, ok := readClaim(t, ctx, "pc-drop.service"); ok {
		t.Error("the stale claim stayed")
	}

	// A user removed: carol's claim goes, and the unit comes back.
	systemUnit(t, ctx, "pc-gone.service", "", true, false, "tcp4:127.0.0.1:7240")
	must(t, ctx, "root", "useradd", "-m", "-u", "1002", "carol")
	t.Cleanup(func() { m.Run(context.Background(), "root", "userdel", "-r", "carol") })
	gone := manifest(t, "gone", oneService("gone", "pc-gone.service", "podman-gone.service", 7240, ""))
	if out, code := portclaim(t, ctx, "carol", nil, "resolve", "--manifest", gone); code != 0 || isActive(ctx, "pc-gone.service") != "inactive" {
		t.Fatalf("carol's resolve: exit %d\n%s", code, out)
	}
	must(t, ctx, "root", "userdel", "-r", "carol")
	must(t, ctx, "root", "systemctl", "restart", "portclaim-reconcile.service")
	if s := isActive(ctx, "pc-gone.service"); s != "active" {
		t.Errorf("after carol was removed, pc-gone.service is %s", s)
	}
	if _, ok := readClaimIn(t, ctx, claimsDir+"/carol", "pc-gone.service"); ok {
		t.Error("the claim of a removed user stayed")
	}
}

// switchToPolicyWithout switches the machine, as nixos-rebuild would, to
// the configuration rendered without unit in any user's yield list, and
// back when the test ends.
func switchToPolicyWithout(t *testing.T, ctx context.Context, unit string) {
	t.Helper()
	without := map[string][]string{}
	for u, users := range yieldTo {
		if u != unit {
			without[u] = users
		}
	}
	smaller, err := fixture.Render(ctx, without)
	if err != nil {
		t.Fatal(err)
	}
	switchFor(t, ctx, smaller)
}

// switchFor switches the machine to files, as nixos-rebuild would, and
// back to the installed configuration when the test ends; either switch
// failing (a unit failed: exit 4) fails the test.
func switchFor(t *testing.T, ctx context.Context, files fixture.Files) {
	t.Helper()
	if err := nixosSwitch(t, ctx, installed, files).Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nixosSwitch(t, context.Background(), files, installed).Err(); err != nil {
			t.Error(err)
		}
	})
}
