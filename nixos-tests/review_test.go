package e2e

// Scenarios from an adversarial review of the broker, each reproducing
// what it found on a booted machine before the fix.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/portclaim/portclaim/nixos-tests/fixture"
)

// ask sends a raw request to the broker as user and returns its answer.
func ask(t *testing.T, ctx context.Context, user, request string) string {
	t.Helper()
	return must(t, ctx, user, "sh", "-c", fmt.Sprintf("printf '%%s\\n' '%s' | brokerask /run/portclaim/broker.sock", request))
}

func yieldRequest(unit string, port int) string {
	return fmt.Sprintf(`{"version":1,"op":"yield","yield":{"service":"x","units":[%q],"ports":[{"port":%d,"protocol":"tcp","address":""}]}}`, unit, port)
}

// TestBrokerTakesTheSocketAlong: asked to stop a service alone, the broker
// takes the socket that activates it into the yield, and so refuses when
// the policy does not name that socket (stopped alone, the service would
// be started again by the socket, or leave it failed).
func TestBrokerTakesTheSocketAlong(t *testing.T) {
	ctx := need(t)
	installUnit(t, ctx, "pc-half2.service", "[Service]\nExecStart=/bin/sleep infinity\n", false)
	installUnit(t, ctx, "pc-half2.socket", "[Socket]\nListenStream=127.0.0.1:7251\n", false)
	must(t, ctx, "root", "systemctl", "start", "pc-half2.socket", "pc-half2.service")
	out := ask(t, ctx, "alice", yieldRequest("pc-half2.service", 7251))
	contains(t, "the broker's answer", out, `"refused"`, "pc-half2.socket", `services.portclaim.yield.\"pc-half2.socket\".users = [ \"alice\" ];`)
	if isActive(ctx, "pc-half2.service") != "active" || isActive(ctx, "pc-half2.socket") != "active" {
		t.Errorf("service %s, socket %s; want both left alone", isActive(ctx, "pc-half2.service"), isActive(ctx, "pc-half2.socket"))
	}
}

// TestReleaseDoesNotStopConflictingUnits: a unit that Conflicts= with
// the one released and runs now is not stopped by the release's start:
// the release waits, keeping its record.
func TestReleaseDoesNotStopConflictingUnits(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-conf.service", "", true, false, "tcp4:127.0.0.1:7252")
	installUnit(t, ctx, "pc-conf-victim.service", "Conflicts=pc-conf.service\n[Service]\nExecStart=/bin/sleep infinity\n", false)
	path := manifest(t, "conf", oneService("conf", "pc-conf.service", "podman-conf.service", 7252, ""))
	if out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path); code != 0 || isActive(ctx, "pc-conf.service") != "inactive" {
		t.Fatalf("resolve: exit %d\n%s", code, out)
	}
	must(t, ctx, "root", "systemctl", "start", "pc-conf-victim.service")
	out, _ := portclaim(t, ctx, "alice", nil, "release", "--all")
	contains(t, "release", out, "deferred pc-conf.service: starting it would stop pc-conf-victim.service (Conflicts=)")
	if isActive(ctx, "pc-conf-victim.service") != "active" {
		t.Error("the release stopped a unit the policy does not name")
	}
	if _, ok := readClaim(t, ctx, "pc-conf.service"); !ok {
		t.Error("the deferred release dropped its record")
	}
}

// TestYieldDoesNotCancelRootsJobs: while systemd has a start job queued
// for a unit a stop would reach, the broker refuses instead of cancelling
// it with job mode "replace".
func TestYieldDoesNotCancelRootsJobs(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-pend.service", "", true, false, "tcp4:127.0.0.1:7253")
	installUnit(t, ctx, "pc-pend-slow.service", "[Service]\nType=oneshot\nExecStart=/bin/true\nTimeoutStartSec=5min\n", false)
	installUnit(t, ctx, "pc-pend-dep.service", "Requires=pc-pend.service\nAfter=pc-pend-slow.service\n[Service]\nExecStart=/bin/sleep infinity\n", false)
	// The slow start lasts until the resolve has answered: root's start of
	// pc-pend-dep.service waits behind it, queued, all that time.
	slow := newGate(t, ctx, "pend")
	addDropIn(t, ctx, "pc-pend-slow.service", "[Service]\nExecStart=\nExecStart="+slow.Wait()+"\n")
	must(t, ctx, "root", "systemctl", "start", "--no-block", "pc-pend-slow.service", "pc-pend-dep.service")
	waitFor(t, ctx, "root", `test "$(systemctl show -P ActiveState pc-pend-slow.service)" = activating`)
	path := manifest(t, "pend", oneService("pend", "pc-pend.service", "podman-pend.service", 7253, ""))
	out, _ := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path)
	contains(t, "resolve", out, "jobs queued for pc-pend-dep.service", "nothing was changed")
	slow.Open(t, ctx)
	waitUntil(t, ctx, "root's queued start of pc-pend-dep.service to run", func() (bool, string) {
		s := isActive(ctx, "pc-pend-dep.service")
		return s == "active", s
	})
}

// TestHelperStoppedWhenUnneededIsADependent: a helper with
// StopWhenUnneeded= that only the yielding unit needs would go down with
// it: the policy must name it.
func TestHelperStoppedWhenUnneededIsADependent(t *testing.T) {
	ctx := need(t)
	installUnit(t, ctx, "pc-sw-helper.service", "StopWhenUnneeded=yes\n[Service]\nExecStart=/bin/sleep infinity\n", false)
	systemUnit(t, ctx, "pc-sw.service", "Requires=pc-sw-helper.service\nAfter=pc-sw-helper.service", true, false, "tcp4:127.0.0.1:7254")
	// installUnit put [Unit] lines after [Service]; put them where they
	// count.
	must(t, ctx, "root", "sh", "-c", `printf '[Unit]\nRequires=pc-sw-helper.service\nAfter=pc-sw-helper.service\n' > /etc/systemd/system/pc-sw.service.d/deps.conf 2>/dev/null ||
		{ mkdir -p /etc/systemd/system/pc-sw.service.d && printf '[Unit]\nRequires=pc-sw-helper.service\nAfter=pc-sw-helper.service\n' > /etc/systemd/system/pc-sw.service.d/deps.conf; }
		systemctl daemon-reload && systemctl restart pc-sw.service`)
	t.Cleanup(func() {
		m.Run(context.Background(), "root", "rm", "-f", "/etc/systemd/system/pc-sw.service.d/deps.conf")
	})
	// The restart's job is done once holdport runs, not once it has
	// bound again: on a busy machine resolve found the port free.
	waitListening(t, ctx, "tcp4:127.0.0.1:7254")
	if isActive(ctx, "pc-sw-helper.service") != "active" {
		t.Fatal("the helper did not start with the unit")
	}
	path := manifest(t, "sw", oneService("sw", "pc-sw.service", "podman-sw.service", 7254, ""))
	out, _ := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path)
	contains(t, "resolve", out, "refused:", "pc-sw-helper.service", `services.portclaim.yield."pc-sw-helper.service".users = [ "alice" ];`)
	if isActive(ctx, "pc-sw.service") != "active" || isActive(ctx, "pc-sw-helper.service") != "active" {
		t.Error("a refused yield stopped something")
	}
}

// TestABystandersSocketNeitherBlocksNorDefers: a request naming a port
// the unit never held, which someone else holds: the yield reports it at
// once rather than wait with every other user behind it, and the release
// does not keep the unit down for it.
func TestABystandersSocketNeitherBlocksNorDefers(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-by.service", "", true, false, "tcp4:127.0.0.1:7255")
	systemUnit(t, ctx, "pc-bystander.service", "", true, false, "tcp4:127.0.0.1:7256")
	// The request would let the broker wait two minutes for the port; it
	// must answer long before, however busy the machine.
	start := time.Now()
	out := ask(t, ctx, "alice", strings.Replace(yieldRequest("pc-by.service", 7256), `"op":"yield",`, `"op":"yield","waitMs":120000,`, 1))
	if took := time.Since(start); took > 60*time.Second {
		t.Errorf("the yield waited %s on a socket the unit never held", took)
	}
	contains(t, "the broker's answer", out, `"outcome":"stopped"`, `"portsFree":false`, "system pc-bystander.service")
	out, _ = portclaim(t, ctx, "alice", nil, "release", "--all")
	if isActive(ctx, "pc-by.service") != "active" {
		t.Errorf("a bystander's socket kept the release from starting the unit:\n%s", out)
	}
}

// TestRootsMaskGoesWithItsRecord: root masks a unit for alice (it has no
// condition for her), bob claims it through the broker, root releases
// alice's claim: the mask goes with it (bob's condition keeps the unit
// down), and bob's release brings it back.
func TestRootsMaskGoesWithItsRecord(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-mask.service", "", true, true, "tcp4:127.0.0.1:7257")
	path := manifest(t, "mask", oneService("mask", "pc-mask.service", "podman-mask.service", 7257, ""))
	if out, code := portclaim(t, ctx, "root", nil, "resolve", "--user", "alice", "--yes", "--manifest", path); code != 0 {
		t.Fatalf("root resolve for alice: exit %d\n%s", code, out)
	}
	if out, code := portclaim(t, ctx, "bob", nil, "resolve", "--manifest", path); code != 0 {
		t.Fatalf("bob's resolve: exit %d\n%s", code, out)
	}
	if _, ok := readClaimIn(t, ctx, claimsDir+"/bob", "pc-mask.service"); !ok {
		t.Fatal("bob has no claim")
	}
	portclaim(t, ctx, "root", nil, "release", "--user", "alice", "--all")
	if r := m.Run(ctx, "root", "test", "-e", "/run/systemd/transient/pc-mask.service"); r.ExitCode == 0 {
		t.Error("root's mask stayed without the record that made it")
	}
	if s := isActive(ctx, "pc-mask.service"); s != "inactive" {
		t.Errorf("pc-mask.service is %s while bob's claim keeps it down", s)
	}
	out, _ := portclaim(t, ctx, "bob", nil, "release", "--all")
	if s := isActive(ctx, "pc-mask.service"); s != "active" {
		t.Errorf("bob's release: %s\n%s", s, out)
	}
}

// TestAUnitThatFailsAfterItsStartKeepsTheRecord: a service whose start
// job is done but which fails a moment later is not called released. (It
// fails as soon as it runs: a simple service's start job is done once its
// process is forked, and how long the failure takes after that is the
// machine's, not the test's.)
func TestAUnitThatFailsAfterItsStartKeepsTheRecord(t *testing.T) {
	ctx := need(t)
	installUnit(t, ctx, "pc-late.service", "[Service]\nExecStart=/bin/sh -c 'if test -e /run/pc-late-broken; then exit 1; fi; exec /usr/local/bin/holdport tcp4:127.0.0.1:7258'\n", false)
	must(t, ctx, "root", "systemctl", "start", "pc-late.service")
	waitListening(t, ctx, "tcp4:127.0.0.1:7258") // else resolve may find the port free
	t.Cleanup(func() { m.Run(context.Background(), "root", "rm", "-f", "/run/pc-late-broken") })
	path := manifest(t, "late", oneService("late", "pc-late.service", "podman-late.service", 7258, ""))
	if out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path); code != 0 {
		t.Fatalf("resolve: exit %d\n%s", code, out)
	}
	must(t, ctx, "root", "touch", "/run/pc-late-broken")
	out, _ := portclaim(t, ctx, "alice", nil, "release", "--all")
	contains(t, "release", out, "failed   pc-late.service: its start job finished, but it is")
	if _, ok := readClaimIn(t, ctx, claimsDir+"/alice/.releasing", "pc-late.service"); !ok {
		t.Fatal("the record went although the unit failed")
	}
	// Asked to yield again before the release finished, the record comes
	// back as it was: the state before the first claim, not "failed".
	portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path)
	if c, ok := readClaim(t, ctx, "pc-late.service"); !ok || c.Prior.ActiveState != "active" {
		t.Fatalf("re-yield during a failed release: %+v (exists %v)", c, ok)
	}
	must(t, ctx, "root", "rm", "/run/pc-late-broken")
	out, _ = portclaim(t, ctx, "alice", nil, "release", "--all")
	if s := isActive(ctx, "pc-late.service"); s != "active" {
		t.Errorf("after the fix: %s\n%s", s, out)
	}
}

// TestRootPrintsNoUsersControlSequences: bob's last-run record, which he
// writes, carries terminal escapes; root's status shows it harmless.
func TestRootPrintsNoUsersControlSequences(t *testing.T) {
	ctx := need(t)
	record := `{"command":"resolve\u001b]0;pwned\u0007","time":"2026-11-27T10:00:00Z","exit":0,"summary":"\u001b[2J\u001b[1A\u001b[2Kall fine","lines":["\u001b]52;c;cm0gLXJmIH4=\u0007"]}`
	if err := m.WriteFile("/home/bob/.local/state/portclaim/last-run.json", []byte(record), 0o644, "bob"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Run(context.Background(), "root", "rm", "-rf", "/home/bob/.local/state/portclaim") })
	out := must(t, ctx, "root", "portclaim", "status", "--user", "bob")
	if strings.ContainsAny(out, "\x1b\a") {
		t.Errorf("root's status printed bob's control sequences: %q", out)
	}
	contains(t, "root's status", out, "last run of bob", "all fine")
}

// TestAnotherUsersFailedReleaseKeepsThePrior: alice's release fails (her
// record waits in .releasing, the unit failed), then bob claims the unit:
// his claim keeps the state before alice's first claim, and the last
// release brings the unit back.
func TestAnotherUsersFailedReleaseKeepsThePrior(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-r2x.service", "ExecStartPre=/bin/sh -c 'test ! -e /run/r2x-broken'", true, true, "tcp4:127.0.0.1:7260")
	t.Cleanup(func() { m.Run(context.Background(), "root", "rm", "-f", "/run/r2x-broken") })
	path := manifest(t, "r2x", oneService("r2x", "pc-r2x.service", "podman-r2x.service", 7260, ""))
	portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path)
	must(t, ctx, "root", "touch", "/run/r2x-broken")
	portclaim(t, ctx, "alice", nil, "release", "--all")
	if _, ok := readClaimIn(t, ctx, claimsDir+"/alice/.releasing", "pc-r2x.service"); !ok {
		t.Fatal("alice's failed release left no record")
	}
	portclaim(t, ctx, "bob", nil, "resolve", "--manifest", path)
	if c, ok := readClaimIn(t, ctx, claimsDir+"/bob", "pc-r2x.service"); !ok || c.Prior.ActiveState != "active" {
		t.Fatalf("bob's claim: %+v (exists %v); want the state before the first claim, active", c, ok)
	}
	must(t, ctx, "root", "rm", "/run/r2x-broken")
	portclaim(t, ctx, "alice", nil, "release", "--all")
	out, _ := portclaim(t, ctx, "bob", nil, "release", "--all")
	if s := isActive(ctx, "pc-r2x.service"); s != "active" {
		t.Errorf("after both releases pc-r2x.service is %s\n%s", s, out)
	}
}

// TestAPolicyChangeWhileWaitingIsHeeded: bob's second request waits for
// his first; meanwhile a switch takes the unit out of the policy. The
// waiting request acts on the policy of now: refused.
func TestAPolicyChangeWhileWaitingIsHeeded(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-r2slow.service", "TimeoutStopSec=5min", true, false, "tcp4:127.0.0.1:7261")
	systemUnit(t, ctx, "pc-r2pol.service", "", true, true, "tcp4:127.0.0.1:7262")
	// bob's first request holds the broker until the gate opens: its stop
	// of pc-r2slow.service waits there.
	stop := newGate(t, ctx, "r2slow")
	addDropIn(t, ctx, "pc-r2slow.service", "[Service]\nExecStop="+stop.Wait()+"\n")
	t.Cleanup(func() { m.Run(context.Background(), "root", "rm", "-f", "/tmp/r2-a", "/tmp/r2-b") })
	ask := func(out, request string) {
		must(t, ctx, "bob", "sh", "-c", fmt.Sprintf(`printf '%%s\n' '%s' | brokerask /run/portclaim/broker.sock > %s 2>&1 &`, request, out))
	}
	ask("/tmp/r2-a", yieldRequest("pc-r2slow.service", 7261))
	waitFor(t, ctx, "root", `test "$(systemctl show -P ActiveState pc-r2slow.service)" = deactivating`)
	ask("/tmp/r2-b", yieldRequest("pc-r2pol.service", 7262))
	waitFor(t, ctx, "root", "grep -q 'request sent' /tmp/r2-b")

	// The switch: its new policy is in place at once; its reconcile waits
	// its turn behind bob's first request.
	without := map[string][]string{}
	for u, users := range yieldTo {
		if u != "pc-r2pol.service" {
			without[u] = users
		}
	}
	smaller, err := fixture.Render(ctx, without)
	if err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		res fixture.SwitchResult
		err error
	}
	switched := make(chan outcome, 1)
	go func() {
		res, err := fixture.Switch(ctx, m, installed, smaller)
		switched <- outcome{res, err}
	}()
	var once outcome
	joined := false
	join := func() outcome {
		if !joined {
			once, joined = <-switched, true
		}
		return once
	}
	t.Cleanup(func() {
		m.Run(context.Background(), "root", "timeout", "5", "sh", "-c", "echo go > "+string(stop))
		join()
		if err := nixosSwitch(t, context.Background(), smaller, installed).Err(); err != nil {
			t.Error(err)
		}
	})
	waitFor(t, ctx, "root", "! grep -q pc-r2pol.service "+policyPath)
	stop.Open(t, ctx)
	waitFor(t, ctx, "root", "grep -q version /tmp/r2-b")
	if o := join(); o.err != nil || o.res.ExitCode != 0 {
		t.Errorf("the switch: %v\n%s", o.err, o.res.Output)
	}
	b := must(t, ctx, "root", "cat", "/tmp/r2-b")
	// Refused, not stopped and then given back by reconcile: the
	// unit's state alone could not tell the two apart.
	contains(t, "the waiting request's answer", b, `"refused":`, `"units":["pc-r2pol.service"]`)
	if s := isActive(ctx, "pc-r2pol.service"); s != "active" {
		t.Errorf("a request that waited acted on the old policy: pc-r2pol.service is %s\n%s", s, b)
	}
	if _, ok := readClaimIn(t, ctx, claimsDir+"/bob", "pc-r2pol.service"); ok {
		t.Error("bob holds a claim the policy no longer allows")
	}
}

// The helper comes back along with pc-r2w.service only because the policy
// names it: what it does not name a release's start leaves out
// (TestAReleaseStartsNothingOutsideThePolicy).
func init() { yieldTo["pc-r2w-helper.service"] = []string{"alice"} }

// TestAReleaseDoesNotStopWhatItsStartPullsInConflictsWith: the unit
// Wants= a helper (which comes back along) that Conflicts= with a unit
// now running: starting it would stop that one, so the release waits.
func TestAReleaseDoesNotStopWhatItsStartPullsInConflictsWith(t *testing.T) {
	ctx := need(t)
	installUnit(t, ctx, "pc-r2w-helper.service", "Conflicts=pc-r2w-victim.service\n[Service]\nExecStart=/bin/sleep infinity\n", false)
	installUnit(t, ctx, "pc-r2w-victim.service", "[Service]\nExecStart=/bin/sleep infinity\n", false)
	systemUnit(t, ctx, "pc-r2w.service", "", false, false, "tcp4:127.0.0.1:7263")
	must(t, ctx, "root", "sh", "-c", `mkdir -p /etc/systemd/system/pc-r2w.service.d && printf '[Unit]\nWants=pc-r2w-helper.service\n' > /etc/systemd/system/pc-r2w.service.d/wants.conf && systemctl daemon-reload && systemctl start pc-r2w.service`)
	t.Cleanup(func() {
		m.Run(context.Background(), "root", "rm", "-rf", "/etc/systemd/system/pc-r2w.service.d/wants.conf")
	})
	// Its start job is done once holdport runs, not once it has bound:
	// on a busy machine resolve would find the port free and claim nothing.
	waitListening(t, ctx, "tcp4:127.0.0.1:7263")
	path := manifest(t, "r2w", oneService("r2w", "pc-r2w.service", "podman-r2w.service", 7263, ""))
	if out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path); code != 0 || isActive(ctx, "pc-r2w.service") != "inactive" {
		t.Fatalf("resolve: exit %d, pc-r2w.service %s\n%s", code, isActive(ctx, "pc-r2w.service"), out)
	}
	must(t, ctx, "root", "systemctl", "start", "pc-r2w-victim.service")
	out, _ := portclaim(t, ctx, "alice", nil, "release", "--all")
	contains(t, "release", out, "deferred pc-r2w.service: starting it would stop pc-r2w-victim.service")
	if isActive(ctx, "pc-r2w-victim.service") != "active" {
		t.Error("the release stopped a unit the policy does not name")
	}
}

// TestAReleaseDoesNotCancelRootsJobs: systemd has a stop queued for a
// unit the release's start would pull in; the release waits instead of
// cancelling it with job mode "replace".
func TestAReleaseDoesNotCancelRootsJobs(t *testing.T) {
	ctx := need(t)
	installUnit(t, ctx, "pc-r2q-b.service", "[Service]\nExecStart=/bin/sleep infinity\nTimeoutStopSec=5min\n", false)
	installUnit(t, ctx, "pc-r2q-h.service", "Before=pc-r2q-b.service\n[Service]\nExecStart=/bin/sleep infinity\n", false)
	systemUnit(t, ctx, "pc-r2t.service", "", false, false, "tcp4:127.0.0.1:7264")
	// pc-r2q-b's stop lasts until the release has answered: the stop of
	// pc-r2q-h, ordered after it, stays queued all that time.
	stop := newGate(t, ctx, "r2q")
	addDropIn(t, ctx, "pc-r2q-b.service", "[Service]\nExecStop="+stop.Wait()+"\n")
	addDropIn(t, ctx, "pc-r2t.service", "[Unit]\nWants=pc-r2q-h.service\n")
	must(t, ctx, "root", "systemctl", "start", "pc-r2t.service", "pc-r2q-b.service")
	waitListening(t, ctx, "tcp4:127.0.0.1:7264")
	path := manifest(t, "r2t", oneService("r2t", "pc-r2t.service", "podman-r2t.service", 7264, ""))
	if out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path); code != 0 || isActive(ctx, "pc-r2t.service") != "inactive" {
		t.Fatalf("resolve: exit %d, pc-r2t.service %s\n%s", code, isActive(ctx, "pc-r2t.service"), out)
	}
	must(t, ctx, "root", "systemctl", "stop", "--no-block", "pc-r2q-b.service", "pc-r2q-h.service")
	waitFor(t, ctx, "root", `test "$(systemctl show -P ActiveState pc-r2q-b.service)" = deactivating`)
	out, _ := portclaim(t, ctx, "alice", nil, "release", "--all")
	contains(t, "release", out, "deferred pc-r2t.service: systemd has jobs queued for pc-r2q-h.service")
	stop.Open(t, ctx)
	waitUntil(t, ctx, "root's queued stop of pc-r2q-h.service to run", func() (bool, string) {
		s := isActive(ctx, "pc-r2q-h.service")
		return s == "inactive", s
	})
}
