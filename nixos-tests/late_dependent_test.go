package e2e

// A yield reads what its stops take along before it writes its claims
// and waits for its earlier stops; a unit that starts in between must not
// go down with the stop, recordless.

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func init() {
	yieldTo["pc-race.service"] = []string{"alice"} // but not pc-race-dep.service
}

// TestADependentStartedBeforeTheStopIsNotTakenDown: pc-race-dep.service,
// which the policy does not name, Requires= pc-race.service and starts
// after the yield was planned and before its stop (the broker pauses
// there; a socket, a timer or root would start it as well). The stop
// would take it down with no record: the broker reads again just before
// the stop, refuses, and undoes what it did; both units keep running,
// and no claim stays.
func TestADependentStartedBeforeTheStopIsNotTakenDown(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-race.service", "", true, false, "tcp4:127.0.0.1:7270")
	installUnit(t, ctx, "pc-race-dep.service", "Requires=pc-race.service\nAfter=pc-race.service\n[Service]\nExecStart=/bin/sleep infinity\n", false)
	// The broker pauses before the stop until the test has started the
	// dependent: a window that follows the test, however slow the machine.
	brokerEnv(t, ctx, "PORTCLAIM_TEST_PAUSE=before-stop:pc-race.service=/run/pc-race-go")
	path := manifest(t, "race", oneService("race", "pc-race.service", "podman-race.service", 7270, ""))
	t.Cleanup(func() {
		m.Run(context.Background(), "root", "rm", "-f", "/tmp/race.out", "/tmp/race.exit", "/run/pc-race-go")
	})
	must(t, ctx, "alice", "sh", "-c", "(portclaim resolve --manifest "+path+" > /tmp/race.out 2>&1; echo $? > /tmp/race.exit) </dev/null >/dev/null 2>&1 &")
	// The claim is written before the stop, and the broker waits there.
	waitFor(t, ctx, "root", "test -e "+claimsDir+"/alice/pc-race.service")
	if isActive(ctx, "pc-race-dep.service") != "inactive" {
		t.Fatal("pc-race-dep.service ran before it was started")
	}
	must(t, ctx, "root", "systemctl", "start", "pc-race-dep.service")
	must(t, ctx, "root", "touch", "/run/pc-race-go")
	waitFor(t, ctx, "root", "test -s /tmp/race.exit")
	out := must(t, ctx, "root", "cat", "/tmp/race.out")
	if s := isActive(ctx, "pc-race-dep.service"); s != "active" {
		t.Fatalf("the yield's stop took pc-race-dep.service down (%s), which the policy does not name and no record keeps:\n%s", s, out)
	}
	contains(t, "resolve", out, "pc-race.service: not stopped: a stop now would also stop pc-race-dep.service (it depends on pc-race.service)", "undone")
	if s := isActive(ctx, "pc-race.service"); s != "active" {
		t.Errorf("pc-race.service is %s after the refused stop\n%s", s, out)
	}
	if _, ok := readClaim(t, ctx, "pc-race.service"); ok {
		t.Errorf("the claim of the undone yield stayed\n%s", out)
	}
}

// brokerEnv sets an environment variable of the broker's unit (the test
// hooks of portclaim's e2e build, package yield/testhooks:
// PORTCLAIM_TEST_PAUSE) until the test ends.
func brokerEnv(t *testing.T, ctx context.Context, assignment string) {
	t.Helper()
	dropin := "/etc/systemd/system/portclaim.service.d/test-env.conf"
	if err := m.WriteFile(dropin, []byte("[Service]\nEnvironment="+assignment+"\n"), 0o644, ""); err != nil {
		t.Fatal(err)
	}
	// A broker still running keeps its old environment: stop it; the
	// socket starts the new one.
	must(t, ctx, "root", "systemctl", "daemon-reload")
	must(t, ctx, "root", "systemctl", "stop", "portclaim.service")
	t.Cleanup(func() {
		ctx := context.Background()
		os.Remove(filepath.Join(m.Root(), dropin))
		m.Run(ctx, "root", "systemctl", "daemon-reload")
		m.Run(ctx, "root", "systemctl", "stop", "portclaim.service")
		m.Run(ctx, "root", "systemctl", "reset-failed", "portclaim.service")
	})
}
