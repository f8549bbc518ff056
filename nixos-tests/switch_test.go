package e2e

// What the real switches do to units, after portclaim's steps: `nixos-rebuild
// switch` (fixture.Switch: switch-to-configuration's steps, which start
// every active target, and so every stopped unit multi-user.target wants)
// and home-manager's sd-switch (tools/sdswitch: it starts the active user
// targets). A claimed unit must stay down through both, a user unit that
// failed on its port must run after them, and a policy change must never
// fail nixos-rebuild switch without naming who holds the port and what to
// do.

import (
	"context"
	"strings"
	"testing"

	"github.com/portclaim/portclaim/nixos-tests/fixture"
)

func init() {
	yieldTo["pc-p-sw1.service"] = []string{"alice"}
	yieldTo["pc-p-sw2.service"] = []string{"alice"}
	yieldTo["pc-p-sw3.service"] = []string{"alice"} // dropped by TestAPolicyChangeNeverFailsTheSwitchUnexplained
}

// nixosSwitch runs `nixos-rebuild switch` from old to new (fixture.Switch),
// failing the test when it could not run at all.
func nixosSwitch(t *testing.T, ctx context.Context, old, new fixture.Files) fixture.SwitchResult {
	t.Helper()
	res, err := fixture.Switch(ctx, m, old, new)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// sdSwitch runs alice's sd-switch with her units unchanged: what
// home-manager's reloadSystemd does to them on a switch that changes none.
func sdSwitch(t *testing.T, ctx context.Context) string {
	t.Helper()
	units := "/home/alice/.config/systemd/user"
	r := m.RunEnv(ctx, "alice", userEnv("alice"), fixture.SDSwitch, "--old-units", units, "--new-units", units)
	if r.ExitCode != 0 {
		t.Fatalf("sd-switch:\n%s", r)
	}
	return r.Stdout
}

// claimedUnits lists the units some user's claim keeps down now.
func claimedUnits(t *testing.T, ctx context.Context) []string {
	t.Helper()
	out := must(t, ctx, "root", "sh", "-c", "cd "+claimsDir+" && find . -mindepth 2 -maxdepth 2 -type f ! -name '.*' -printf '%f\\n' | sort -u")
	return strings.Fields(out)
}

// afterSwitches does what both switches do when a switch follows a
// portclaim step with nothing else changed: nixos-rebuild switch (a
// reload, every active target started) and alice's sd-switch. Every unit a
// claim keeps down stays down, and the system switch succeeds.
func afterSwitches(t *testing.T, ctx context.Context) {
	t.Helper()
	claimed := claimedUnits(t, ctx)
	res := nixosSwitch(t, ctx, installed, installed)
	if res.ExitCode != 0 {
		t.Errorf("nixos-rebuild switch with nothing changed failed:\n%s", res.Output)
	}
	sdSwitch(t, ctx)
	for _, u := range claimed {
		if s := isActive(ctx, u); s == "active" || s == "activating" {
			t.Errorf("%s is %s after the switches, though a claim keeps it down\n%s", u, s, res.Output)
		}
	}
}

// TestAClaimedUnitStaysDownThroughASwitch: switch-to-configuration starts
// multi-user.target, which starts what it wants and is not running, and
// reloads systemd; a switch that changes the unit's drop-in (another user
// allowed) leaves it alone; so does a restart of the target by hand. The
// claim's condition keeps the unit down through each, and none fails the
// switch.
func TestAClaimedUnitStaysDownThroughASwitch(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-p-sw1.service", "", true, true, "tcp4:127.0.0.1:7601")
	path := manifest(t, "p-sw1", oneService("p-sw1", "pc-p-sw1.service", "podman-p-sw1.service", 7601, ""))
	if out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path); code != 0 || isActive(ctx, "pc-p-sw1.service") != "inactive" {
		t.Fatalf("resolve: exit %d\n%s", code, out)
	}
	afterSwitches(t, ctx)

	// The administrator lets bob claim it too: its drop-in changes.
	both := map[string][]string{}
	for u, users := range yieldTo {
		both[u] = users
	}
	both["pc-p-sw1.service"] = []string{"alice", "bob"}
	files, err := fixture.Render(ctx, both)
	if err != nil {
		t.Fatal(err)
	}
	switchFor(t, ctx, files)
	if s := isActive(ctx, "pc-p-sw1.service"); s != "inactive" {
		t.Fatalf("pc-p-sw1.service is %s after a switch that changed its drop-in", s)
	}
	must(t, ctx, "root", "systemctl", "restart", "multi-user.target")
	must(t, ctx, "root", "systemctl", "daemon-reload")
	if s := isActive(ctx, "pc-p-sw1.service"); s != "inactive" {
		t.Fatalf("pc-p-sw1.service is %s after multi-user.target was restarted", s)
	}
}

// TestAUserUnitThatFailedOnThePortRunsAfterTheSwitch: alice's unit failed
// because the system unit held its port; resolve frees it, and the switch's
// sd-switch, starting the active targets, starts the failed unit.
func TestAUserUnitThatFailedOnThePortRunsAfterTheSwitch(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-p-sw2.service", "", true, true, "tcp4:127.0.0.1:7602")
	userUnit(t, ctx, "alice", "pc-p-sw2-user.service", "tcp::7602")
	userctl(t, ctx, "alice", "enable", "pc-p-sw2-user.service")
	userctl(t, ctx, "alice", "start", "pc-p-sw2-user.service")
	waitUntil(t, ctx, "alice's unit failing on 7602", func() (bool, string) {
		r := userctl(t, ctx, "alice", "is-failed", "pc-p-sw2-user.service")
		return r.ExitCode == 0, r.Stdout
	})
	path := manifest(t, "p-sw2", oneService("p-sw2", "pc-p-sw2.service", "pc-p-sw2-user.service", 7602, ""))
	if out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path); code != 0 {
		t.Fatalf("resolve: exit %d\n%s", code, out)
	}
	sdSwitch(t, ctx)
	waitListening(t, ctx, "tcp:*:7602")
	doc, res := check(t, ctx, runners[0], path)
	if res.ExitCode != 0 || doc.Ports[0].Status != "self" {
		t.Fatalf("after the switch alice's unit should hold 7602\n%s", res)
	}
	afterSwitches(t, ctx)
}

// TestAPolicyChangeNeverFailsTheSwitchUnexplained: alice's unit holds the
// port of a unit she claimed; a switch drops that unit from the policy.
// Its drop-in goes, so the switch's start of multi-user.target starts it
// (and reconcile, restarted for the new policy, gives the claim back):
// the unit cannot bind. Either the switch succeeds, or it fails saying
// who holds the port and what to do; never with only "address already in
// use".
func TestAPolicyChangeNeverFailsTheSwitchUnexplained(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-p-sw3.service", "Type=notify", true, true, "tcp4:127.0.0.1:7603")
	userUnit(t, ctx, "alice", "pc-p-sw3-user.service", "tcp::7603")
	path := manifest(t, "p-sw3", oneService("p-sw3", "pc-p-sw3.service", "pc-p-sw3-user.service", 7603, ""))
	if out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path); code != 0 {
		t.Fatalf("resolve: exit %d\n%s", code, out)
	}
	userctl(t, ctx, "alice", "start", "pc-p-sw3-user.service")
	waitListening(t, ctx, "tcp:*:7603")

	without := map[string][]string{}
	for u, users := range yieldTo {
		if u != "pc-p-sw3.service" {
			without[u] = users
		}
	}
	smaller, err := fixture.Render(ctx, without)
	if err != nil {
		t.Fatal(err)
	}
	res := nixosSwitch(t, ctx, installed, smaller)
	t.Cleanup(func() {
		// alice's unit lets the port go first, so that the switch back
		// (whose reconcile finishes a release left under way) succeeds.
		ctx := context.Background()
		m.RunEnv(ctx, "alice", userEnv("alice"), "systemctl", "--user", "stop", "pc-p-sw3-user.service")
		if err := nixosSwitch(t, ctx, smaller, installed).Err(); err != nil {
			t.Error(err)
		}
		exemptFromInvariant(t, "pc-p-sw3.service")
		m.Run(ctx, "root", "systemctl", "stop", "pc-p-sw3.service")
	})
	t.Logf("nixos-rebuild switch dropping pc-p-sw3.service from the policy: exit %d\n%s", res.ExitCode, res.Output)
	if res.ExitCode != 0 {
		for _, want := range []string{"alice's pc-p-sw3-user.service", "7603/tcp"} {
			if !strings.Contains(res.Output, want) {
				t.Errorf("the failed switch does not say who holds the port (%q):\n%s", want, res.Output)
			}
		}
		// What to do: a command, or the configuration.nix line.
		said := false
		for _, next := range []string{"portclaim release", "portclaim resolve", "services.portclaim.yield", "systemctl --user stop"} {
			said = said || strings.Contains(res.Output, next)
		}
		if !said {
			t.Errorf("the failed switch does not say what to do:\n%s", res.Output)
		}
	}
	// Whatever the switch did, alice's unit keeps the port she holds.
	if who := must(t, ctx, "root", "portclaim", "who", "7603"); !strings.Contains(who, "user alice's pc-p-sw3-user.service") {
		t.Errorf("after the switch alice's unit should still hold 7603:\n%s", who)
	}
}
