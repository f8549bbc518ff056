package e2e

// A user's whole story, from the README's first command to the port in
// her own unit: every hint works when followed, every label is true,
// every line short (issue 17). Units pc-s-*, user units podman-s-*,
// ports 7500-7599.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/portclaim/portclaim/pkg/report"
)

func init() {
	for _, u := range []string{"pc-s-root.service", "pc-s-stop.service", "pc-s-fail.service", "pc-s-sw.service", "pc-s-tty.service",
		"pc-s-lab.service", "pc-s-r9.service", "pc-s-time.service", "pc-s-noen.service"} {
		yieldTo[u] = []string{"alice"}
	}
}

// homeManifest is alice's manifest where the home-manager module links
// it, where every command finds it without --manifest.
func homeManifest(t *testing.T, body string) {
	t.Helper()
	if err := m.WriteFile("/home/alice/.config/portclaim/manifest.json", []byte(body), 0o644, "alice"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Run(context.Background(), "root", "rm", "-rf", "/home/alice/.config/portclaim") })
}

// podmanService is a manifest service whose user side is a home-manager
// podman container publishing each port on itself.
func podmanService(name, systemUnit string, ports ...int) string {
	var ps, specs []string
	for _, p := range ports {
		ps = append(ps, fmt.Sprintf(`{"port":%d}`, p))
		specs = append(specs, fmt.Sprintf(`"%d:%d"`, p, p))
	}
	return fmt.Sprintf(`{"name":%q,"systemUnits":[%q],"userUnits":["podman-%s.service"],"ports":[%s],"origin":{"podman":{"container":%q,"ports":[%s]}}}`,
		name, systemUnit, name, strings.Join(ps, ","), name, strings.Join(specs, ","))
}

func manifestOf(extra string, services ...string) string {
	return fmt.Sprintf(`{"version":2,%s"services":[%s]}`, extra, strings.Join(services, ","))
}

// failedUserUnit installs alice's user unit on listen, enabled as
// home-manager's units are, and starts it while its port is taken: it
// fails, as podman's rootlessport does.
func failedUserUnit(t *testing.T, ctx context.Context, name string, listen ...string) {
	t.Helper()
	userUnit(t, ctx, "alice", name, listen...)
	userctl(t, ctx, "alice", "enable", name)
	userctl(t, ctx, "alice", "start", name)
	waitUntil(t, ctx, name+" failing on its port", func() (bool, string) {
		r := userctl(t, ctx, "alice", "is-failed", name)
		return r.ExitCode == 0, r.Stdout
	})
}

func lacks(t *testing.T, what, out string, unwanted ...string) {
	t.Helper()
	for _, u := range unwanted {
		if strings.Contains(out, u) {
			t.Errorf("%s says %q:\n%s", what, u, out)
		}
	}
}

// Item 2: root's plain `check` (the README's first command, as root)
// shows every user's claimed ports and holders, never root's own, and
// never advises yielding to root; `--user root` is refused, and plain
// resolve as root names the users it can act for.
func TestStoryRootsCheckShowsEveryUser(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-s-root.service", "", true, false, "tcp4:127.0.0.1:7500")
	homeManifest(t, manifestOf("", podmanService("s-root", "pc-s-root.service", 7500)))
	out, code := portclaim(t, ctx, "root", nil, "check")
	if code != 1 {
		t.Errorf("root's check: exit %d, want 1 (alice's conflict)\n%s", code, out)
	}
	contains(t, "root's check", out, "portclaim check: alice's claims from /home/alice/.config/portclaim/manifest.json",
		"CONFLICT  7500/tcp   s-root [resolvable]", "system pc-s-root.service", "portclaim resolve --user alice", "bob has no manifest")
	lacks(t, "root's check", out, "root's claims", `"root" ]`, "--user root", "built-in map")
	res := m.Run(ctx, "root", "portclaim", "check", "--json")
	var doc report.UsersDoc
	if err := json.Unmarshal([]byte(res.Stdout), &doc); err != nil {
		t.Fatalf("root's check --json: %v\n%s", err, res)
	}
	found := false
	for _, u := range doc.Users {
		if u.User == "alice" && len(u.Conflicts) == 1 && u.Conflicts[0].Port == 7500 && u.Manifest.Kind == "linked" {
			found = true
		}
		if u.User == "root" {
			t.Errorf("root's check --json checks root: %+v", u)
		}
	}
	if !found {
		t.Errorf("root's check --json lacks alice's conflict on 7500\n%s", res)
	}
	out, code = portclaim(t, ctx, "root", nil, "resolve", "--user", "root")
	if code != 2 || !strings.Contains(out, "root has no claims of its own") || strings.Contains(out, "yield.") {
		t.Errorf("resolve --user root: exit %d, want 2 and no advice to yield to root\n%s", code, out)
	}
	out, code = portclaim(t, ctx, "root", nil, "resolve")
	if code != 2 || !strings.Contains(out, "sudo portclaim resolve --user alice") || !strings.Contains(out, "alice, bob") {
		t.Errorf("plain resolve as root: exit %d, want 2 naming the users it can act for\n%s", code, out)
	}
}

// Item 3: a broker whose socket unit is stopped is not "listening": status
// and the metrics say so, check does not offer resolve, and resolve's
// message names `systemctl status portclaim.socket` and the real user.
func TestStoryStoppedBrokerIsNotListening(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-s-stop.service", "", true, false, "tcp4:127.0.0.1:7501")
	path := manifest(t, "s-stop", manifestOf("", podmanService("s-stop", "pc-s-stop.service", 7501)))
	must(t, ctx, "root", "systemctl", "stop", "portclaim.socket")
	t.Cleanup(func() { m.Run(context.Background(), "root", "systemctl", "start", "portclaim.socket") })
	if r := m.Run(ctx, "root", "test", "-S", "/run/portclaim/broker.sock"); r.ExitCode != 0 {
		t.Fatalf("the premise: systemd leaves the socket file when portclaim.socket stops\n%s", r)
	}
	st, _ := portclaim(t, ctx, "alice", nil, "status")
	contains(t, "status", st, "broker: not listening", "systemctl status portclaim.socket")
	lacks(t, "status", st, "broker: listening")
	prom := must(t, ctx, "root", "portclaim", "status", "--format", "prometheus")
	contains(t, "metrics", prom, "portclaim_broker_listening 0\n")
	out, _ := portclaim(t, ctx, "alice", nil, "check", "--manifest", path)
	contains(t, "check", out, "s-stop [admin]", "systemctl status portclaim.socket", "sudo portclaim resolve --user alice", "1 conflict (1 for the administrator)")
	lacks(t, "check", out, "[resolvable]", "fix (resolve)", "NAME")
	out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path)
	contains(t, "resolve", out, "systemctl status portclaim.socket", "sudo portclaim resolve --user alice")
	lacks(t, "resolve", out, "installs", "NAME")
	if code != 0 || isActive(ctx, "pc-s-stop.service") != "active" {
		t.Errorf("resolve without a broker: exit %d, unit %s\n%s", code, isActive(ctx, "pc-s-stop.service"), out)
	}
}

// Items 4, 7, 8 and 17's status: outside a switch (the path check
// recommends), resolve starts the user unit that failed on the port,
// waits until it holds the port, and says so; after that the port is
// "held by your ..." (root reads "alice's"), never "free".
func TestStoryResolveStartsTheUnitThatFailed(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-s-fail.service", "", true, true, "tcp4:127.0.0.1:7502")
	failedUserUnit(t, ctx, "podman-s-fail.service", "tcp::7502")
	path := manifest(t, "s-fail", manifestOf("", podmanService("s-fail", "pc-s-fail.service", 7502)))
	out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path)
	if code != 0 {
		t.Fatalf("resolve: exit %d\n%s", code, out)
	}
	contains(t, "resolve", out, "yielded  pc-s-fail.service to alice: stopped and claimed", "started  podman-s-fail.service: it holds 7502/tcp")
	lacks(t, "resolve", out, "free for alice")
	if s := strings.TrimSpace(userctl(t, ctx, "alice", "is-active", "podman-s-fail.service").Stdout); s != "active" {
		t.Fatalf("podman-s-fail.service is %s after resolve", s)
	}
	doc, res := check(t, ctx, runners[0], path)
	if res.ExitCode != 0 || doc.Ports[0].Status != "self" {
		t.Fatalf("after resolve alice's unit should hold 7502\n%s", res)
	}
	out, _ = portclaim(t, ctx, "alice", nil, "resolve", "--verbose", "--manifest", path)
	contains(t, "resolve --verbose", out, "7502/tcp held by your podman-s-fail.service")
	lacks(t, "resolve --verbose", out, "ports are free")
	out, _ = portclaim(t, ctx, "root", nil, "check", "--user", "alice", "--manifest", path)
	contains(t, "root's check of alice", out, "held by alice's podman-s-fail.service")
	lacks(t, "root's check of alice", out, "your")

	// status --json: each holder an object a program can use.
	var st struct {
		Users []struct {
			User   string
			Claims []struct {
				Unit    string
				Holders []report.HeldDoc
			}
		}
	}
	r := m.Run(ctx, "alice", "portclaim", "status", "--json")
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil || len(st.Users) != 1 {
		t.Fatalf("status --json: %v\n%s", err, r)
	}
	var held *report.HeldDoc
	for _, c := range st.Users[0].Claims {
		if c.Unit == "pc-s-fail.service" && len(c.Holders) == 1 {
			held = &c.Holders[0]
		}
	}
	if held == nil || held.Port != 7502 || held.Protocol != "tcp" || !strings.HasSuffix(held.Address, ":7502") || held.Unit != "podman-s-fail.service" ||
		held.Manager != "user alice" || held.PID <= 0 || held.Process != "holdport" || held.Confidence != "confirmed" {
		t.Errorf("status --json holder of 7502: %+v\n%s", held, r)
	}
}

// Item 4, the other side: a user unit that failed on the port but that
// its manager would not start by itself (neither enabled nor wanted) is
// left alone, and resolve says how to start it.
func TestStoryResolveLeavesAUnitNotEnabledAlone(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-s-noen.service", "", true, true, "tcp4:127.0.0.1:7520")
	userUnit(t, ctx, "alice", "podman-s-noen.service", "tcp::7520")
	userctl(t, ctx, "alice", "start", "podman-s-noen.service")
	waitUntil(t, ctx, "podman-s-noen.service failing on its port", func() (bool, string) {
		r := userctl(t, ctx, "alice", "is-failed", "podman-s-noen.service")
		return r.ExitCode == 0, r.Stdout
	})
	path := manifest(t, "s-noen", manifestOf("", podmanService("s-noen", "pc-s-noen.service", 7520)))
	out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path)
	if code != 0 {
		t.Fatalf("resolve: exit %d\n%s", code, out)
	}
	contains(t, "resolve", out, "yielded  pc-s-noen.service to alice: stopped and claimed",
		"7520/tcp free for podman-s-noen.service, which is not enabled, so not started: `systemctl --user start podman-s-noen.service` starts it")
	if userctl(t, ctx, "alice", "is-failed", "podman-s-noen.service").ExitCode != 0 {
		t.Error("resolve touched a user unit its manager would not start by itself")
	}
}

// Item 4, inside a switch: resolve leaves starting to sd-switch (a unit
// that failed on the port has its failed state reset, or systemd would
// refuse sd-switch's start of it), and the release step checks that each
// claimed port is held by its user unit, saying which is not.
func TestStorySwitchLeavesStartingToTheSwitchAndChecksAfter(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-s-sw.service", "", true, true, "tcp4:127.0.0.1:7503")
	failedUserUnit(t, ctx, "podman-s-sw.service", "tcp::7503")
	path := manifest(t, "s-sw", manifestOf("", podmanService("s-sw", "pc-s-sw.service", 7503)))
	out, code := portclaim(t, ctx, "alice", nil, "resolve", "--switch", "--manifest", path)
	if code != 0 {
		t.Fatalf("resolve --switch: exit %d\n%s", code, out)
	}
	contains(t, "resolve --switch", out, "7503/tcp free for podman-s-sw.service: the switch starts it next (its failed state reset)")
	if s := strings.TrimSpace(userctl(t, ctx, "alice", "is-active", "podman-s-sw.service").Stdout); s != "inactive" {
		t.Fatalf("podman-s-sw.service is %s after resolve inside a switch: it should be inactive, neither failed (sd-switch could not start it) nor started (that is sd-switch's)", s)
	}
	// Before sd-switch got it going, release says so (after --wait).
	out, code = portclaim(t, ctx, "alice", nil, "release", "--switch", "--wait", "1s", "--manifest", path)
	if code != 0 {
		t.Fatalf("release --switch: exit %d\n%s", code, out)
	}
	contains(t, "release --switch", out, "7503/tcp is claimed for your podman-s-sw.service, which does not hold it after the switch",
		"systemctl --user status podman-s-sw.service")
	// sd-switch starts what the active targets want: the unit comes up,
	// and release, waiting for it, is silent.
	sdSwitch(t, ctx)
	if out, code = portclaim(t, ctx, "alice", nil, "release", "--switch", "--wait", "90s", "--manifest", path); code != 0 || out != "" {
		t.Errorf("release --switch with the port held by its unit: exit %d, want 0 and silence\n%s", code, out)
	}
	waitListening(t, ctx, "tcp:*:7503")
}

// Item 5: root without a terminal only reports, and then names the
// command that acts (with --yes), not the one that just declined; so does
// alice's resolve with autoResolve off.
func TestStoryWithoutATerminalTheFixSaysYes(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-s-tty.service", "", true, false, "tcp4:127.0.0.1:7504")
	path := manifest(t, "s-tty", manifestOf("", podmanService("s-tty", "pc-s-tty.service", 7504)))
	out, code := portclaim(t, ctx, "root", nil, "resolve", "--user", "alice", "--manifest", path)
	if code != 0 || isActive(ctx, "pc-s-tty.service") != "active" {
		t.Fatalf("root without a terminal: exit %d, unit %s\n%s", code, isActive(ctx, "pc-s-tty.service"), out)
	}
	contains(t, "root's resolve", out, "portclaim resolve --user alice --yes")
	if all, yes := strings.Count(out, "portclaim resolve --user alice"), strings.Count(out, "portclaim resolve --user alice --yes"); all != yes {
		t.Errorf("%d of %d mentions name the command that just declined, without --yes:\n%s", all-yes, all, out)
	}
	lacks(t, "root's resolve", out, "[resolvable]")
	ask := manifest(t, "s-tty-ask", manifestOf(`"autoResolve":false,`, podmanService("s-tty", "pc-s-tty.service", 7504)))
	out, _ = portclaim(t, ctx, "alice", nil, "resolve", "--manifest", ask)
	contains(t, "alice's resolve, autoResolve off", out, "portclaim resolve --yes", "services.portclaim.autoResolve = true;")
	if _, claimed := readClaim(t, ctx, "pc-s-tty.service"); claimed || isActive(ctx, "pc-s-tty.service") != "active" {
		t.Errorf("alice's resolve with autoResolve off and no terminal acted: pc-s-tty.service %s, claimed %v", isActive(ctx, "pc-s-tty.service"), claimed)
	}
	lacks(t, "alice's resolve, autoResolve off", out, "[resolvable]")
}

// Item 6: [resolvable] and "resolvable" in the summary only where
// `portclaim resolve` acts now; the others named by who can act.
func TestStoryLabelsSayWhoCanAct(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-s-lab.service", "", true, false, "tcp4:127.0.0.1:7505")
	systemUnit(t, ctx, "pc-s-adm.service", "", true, false, "tcp4:127.0.0.1:7506")
	services := []string{podmanService("s-lab", "pc-s-lab.service", 7505), podmanService("s-adm", "pc-s-adm.service", 7506)}
	out, _ := portclaim(t, ctx, "alice", nil, "check", "--manifest", manifest(t, "s-lab", manifestOf("", services...)))
	contains(t, "check", out, "s-lab [resolvable]", "s-adm [admin]", "2 conflicts (1 resolvable, 1 for the administrator)")
	for _, strategy := range []string{"report", "disable-user"} {
		out, _ = portclaim(t, ctx, "alice", nil, "check", "--manifest", manifest(t, "s-lab-"+strategy, manifestOf(`"strategy":"`+strategy+`",`, services...)))
		contains(t, "check under "+strategy, out, "s-lab [you]", "(2 for you)")
		lacks(t, "check under "+strategy, out, "resolvable")
	}
}

// Item 9: root's resolve for alice is part of her story: recorded where
// root may write (never in her home), shown in her status, newest first,
// and in the metrics.
func TestStoryRootsRunIsInHerStatus(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-s-r9.service", "", true, false, "tcp4:127.0.0.1:7507")
	systemUnit(t, ctx, "pc-s-adm9.service", "", true, false, "tcp4:127.0.0.1:7508")
	t.Cleanup(func() {
		m.Run(context.Background(), "root", "rm", "-rf", "/var/lib/portclaim/last-run/alice.json", "/home/alice/.local/state/portclaim")
	})
	// alice's own run leaves the one unit not in the policy.
	path := manifest(t, "s-r9", manifestOf("", podmanService("s-r9", "pc-s-r9.service", 7507), podmanService("s-adm9", "pc-s-adm9.service", 7508)))
	portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path)
	st, _ := portclaim(t, ctx, "alice", nil, "status")
	contains(t, "alice's status after her run", st, "last run of alice: portclaim resolve, exit 0: 1 conflict left")
	mine := must(t, ctx, "root", "sh", "-c", "stat -c '%Y %s' /home/alice/.local/state/portclaim/last-run.json; sha256sum /home/alice/.local/state/portclaim/last-run.json")
	out, code := portclaim(t, ctx, "root", nil, "resolve", "--user", "alice", "--yes", "--manifest", path)
	if code != 0 || isActive(ctx, "pc-s-adm9.service") != "inactive" {
		t.Fatalf("root's resolve for alice: exit %d\n%s", code, out)
	}
	if now := must(t, ctx, "root", "sh", "-c", "stat -c '%Y %s' /home/alice/.local/state/portclaim/last-run.json; sha256sum /home/alice/.local/state/portclaim/last-run.json"); now != mine {
		t.Errorf("root wrote into alice's home:\n%s\n%s", mine, now)
	}
	// Root's, and alice's to read alone: its lines may name other users'
	// processes, which root sees and bob may not.
	if owner := must(t, ctx, "root", "stat", "-c", "%U %a", "/var/lib/portclaim/last-run/alice.json"); owner != "root 640\n" {
		t.Errorf("root's record of its run for alice is %q, want root's 640 (read by alice through an ACL)", owner)
	}
	if r := m.Run(ctx, "bob", "cat", "/var/lib/portclaim/last-run/alice.json"); r.ExitCode == 0 {
		t.Errorf("bob reads root's record of its run for alice:\n%s", r.Stdout)
	}
	if r := m.Run(ctx, "bob", "ls", "/var/lib/portclaim/last-run"); r.ExitCode == 0 {
		t.Errorf("bob lists whom root acted for:\n%s", r.Stdout)
	}
	st, _ = portclaim(t, ctx, "alice", nil, "status")
	contains(t, "alice's status after root's run", st, "last run of alice: portclaim resolve (by root), exit 0: nothing left to do")
	lacks(t, "alice's status after root's run", st, "1 conflict left")
	prom := must(t, ctx, "root", "portclaim", "status", "--format", "prometheus")
	contains(t, "metrics", prom, `portclaim_last_run_conflicts{user="alice",command="resolve"} 0`)
	// Her own record cannot pass for root's, nor hide root's by a date
	// ahead of the clock.
	must(t, ctx, "alice", "sh", "-c", `printf '{"command":"resolve","time":"2099-01-01T00:00:00Z","exit":0,"summary":"forged","by":"root"}' > /home/alice/.local/state/portclaim/last-run.json`)
	st, _ = portclaim(t, ctx, "root", nil, "status", "--user", "alice")
	contains(t, "root's status of alice after her forged record", st, "last run of alice: portclaim resolve (by root), exit 0: nothing left to do")
	lacks(t, "root's status of alice after her forged record", st, "forged")
	// Her next run is newer again, and shown.
	portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path)
	st, _ = portclaim(t, ctx, "alice", nil, "status")
	contains(t, "alice's status after her next run", st, "last run of alice: portclaim resolve, exit 0")
	lacks(t, "alice's status after her next run", st, "(by root)")
}

// Item 10: a run out of time says so, not that the bus failed, and gives
// no lingering advice; for a user who lingers whose manager is down, the
// advice is the manager's own unit.
func TestStoryOutOfTimeAndLingering(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-s-time.service", "", true, false, "tcp4:127.0.0.1:7509")
	path := manifest(t, "s-time", manifestOf("", podmanService("s-time", "pc-s-time.service", 7509)))
	out, code := portclaim(t, ctx, "alice", nil, "check", "--timeout", "0", "--manifest", path)
	if code != 3 {
		t.Errorf("check --timeout 0: exit %d, want 3\n%s", code, out)
	}
	contains(t, "check --timeout 0", out, "the run's time (--timeout) ran out before")
	lacks(t, "check --timeout 0", out, "enable-linger", "use of closed network connection")
	must(t, ctx, "root", "systemctl", "stop", "user@1000.service")
	t.Cleanup(func() { m.Run(context.Background(), "root", "systemctl", "start", "user@1000.service") })
	out, _ = portclaim(t, ctx, "alice", nil, "check", "--manifest", path)
	contains(t, "check with alice's manager stopped", out, "alice lingers, so it should: `systemctl status user@1000.service` says why not")
	lacks(t, "check with alice's manager stopped", out, "enable-linger")
}

// Item 12: under strategy disable-user, a user unit a generator writes
// (podman's quadlet, from home.nix) cannot be disabled with systemctl:
// the fix names home.nix, not `systemctl --user disable`.
func TestStoryDisableUserNamesHomeNixForAGeneratedUnit(t *testing.T) {
	ctx := need(t)
	gen := "/etc/systemd/user-generators/pc-s-gen"
	script := "#!/bin/sh\nprintf '[Service]\\nExecStart=/usr/local/bin/holdport tcp::7510\\n' > \"$1/podman-s-gen.service\"\n" +
		"mkdir -p \"$1/default.target.wants\" && ln -sf ../podman-s-gen.service \"$1/default.target.wants/podman-s-gen.service\"\n"
	if err := m.WriteFile(gen, []byte(script), 0o755, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.Remove(filepath.Join(m.Root(), gen))
		m.RunEnv(context.Background(), "alice", userEnv("alice"), "systemctl", "--user", "daemon-reload")
	})
	userctl(t, ctx, "alice", "daemon-reload")
	if state := strings.TrimSpace(userctl(t, ctx, "alice", "show", "-P", "UnitFileState", "podman-s-gen.service").Stdout); state != "generated" {
		t.Fatalf("the generated unit's state is %q", state)
	}
	// The premise: systemctl cannot disable a generated unit. (systemd
	// 252 says nothing and exits 0; the generator's link stays, and the
	// unit starts again with its manager.)
	r := m.RunEnv(ctx, "alice", userEnv("alice"), "systemctl", "--user", "disable", "podman-s-gen.service")
	userctl(t, ctx, "alice", "daemon-reload")
	if wanted := userctl(t, ctx, "alice", "show", "-P", "WantedBy", "podman-s-gen.service").Stdout; !strings.Contains(wanted, "default.target") {
		t.Fatalf("the premise: `systemctl --user disable` of a generated unit changes nothing, yet it is no longer wanted (%q)\n%s", wanted, r)
	}
	t.Logf("`systemctl --user disable podman-s-gen.service` (generated): exit %d, %q; still wanted by default.target", r.ExitCode, strings.TrimSpace(r.Stderr))
	systemUnit(t, ctx, "pc-s-gen.service", "", true, false, "tcp4:127.0.0.1:7510")
	path := manifest(t, "s-gen", `{"version":2,"strategy":"disable-user","services":[{"name":"s-gen","systemUnits":["pc-s-gen.service"],"userUnits":["podman-s-gen.service"],"ports":[{"port":7510}]}]}`)
	c := oneConflict(t, ctx, runners[0], path)
	if c.Remedy.Who != "you" || len(c.Remedy.Commands) != 0 || !strings.Contains(c.Remedy.Ways[0].Do, "systemctl cannot disable it") || c.Remedy.Ways[0].In != "home.nix" {
		t.Errorf("a generated unit's remedy: %+v", c.Remedy)
	}
	out, _ := portclaim(t, ctx, "alice", nil, "check", "--manifest", path)
	lacks(t, "check", out, "systemctl --user disable")
}

// Items 13, 14, 15: a container with two ports in the way gets one move
// freeing both; a fix is one way a line, within 100 columns unless the
// line is a Nix line or a command that cannot be broken; nothing said
// twice, no doubled semicolons, no nested parentheses; and the last run's
// lines are lines, not one with '?' for its newlines.
func TestStoryLinesAPersonCanRead(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-s-two.service", "", true, false, "tcp4:127.0.0.1:7511", "tcp4:127.0.0.1:7512")
	t.Cleanup(func() { m.Run(context.Background(), "root", "rm", "-rf", "/home/alice/.local/state/portclaim") })
	for _, extra := range []string{"", `"strategy":"report",`} {
		path := manifest(t, "s-two", manifestOf(extra, podmanService("s-two", "pc-s-two.service", 7511, 7512)))
		doc, res := check(t, ctx, runners[0], path)
		if len(doc.Conflicts) != 2 {
			t.Fatalf("want two conflicts\n%s", res)
		}
		move := doc.Conflicts[0].Remedy.MoveLine
		if move == "" || move != doc.Conflicts[1].Remedy.MoveLine || strings.Contains(move, `"7511:`) || strings.Contains(move, `"7512:`) {
			t.Errorf("%swant one move freeing both ports, got %q and %q", extra, move, doc.Conflicts[1].Remedy.MoveLine)
		}
		code := map[string]bool{}
		for _, c := range doc.Conflicts {
			for _, l := range append(append(append([]string{}, c.Remedy.NixOS...), c.Remedy.Home...), c.Remedy.Commands...) {
				code[l] = true
			}
		}
		out, _ := portclaim(t, ctx, "alice", nil, "check", "--manifest", path)
		t.Logf("portclaim check (%s):\n%s", extra, out)
		for _, line := range strings.Split(out, "\n") {
			content := strings.TrimSpace(line)
			if i := strings.LastIndex(content, ": "); len(line) > 100 && i >= 0 && code[content[i+2:]] {
				content = content[i+2:]
			}
			if len(line) > 100 && !code[content] {
				t.Errorf("a line of %d columns:\n%s", len(line), line)
			}
			if strings.Count(line, "portclaim resolve") > 1 || strings.Contains(line, ";;") || strings.Contains(line, ") (") ||
				regexp.MustCompile(`\([^)]*\(`).MatchString(line) {
				t.Errorf("a line that repeats itself or nests: %s", line)
			}
		}
		if n := strings.Count(out, "fix: "); n != 2 {
			t.Errorf("%d fixes for two conflicts", n)
		}
	}
	// The run's lines, kept for status: each one line.
	path := manifest(t, "s-two-run", manifestOf("", podmanService("s-two", "pc-s-two.service", 7511, 7512)))
	portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path)
	for _, args := range [][]string{{"status"}, {"status", "--json"}} {
		out, _ := portclaim(t, ctx, "alice", nil, args...)
		contains(t, strings.Join(args, " "), out, "fix: the system policy does not let pc-s-two.service yield to you")
		lacks(t, strings.Join(args, " "), out, "?")
	}
}

// Item 17: reconcile with nothing to do writes a document, not {}; with
// --verbose it says so.
func TestStoryReconcileSaysNothingToDo(t *testing.T) {
	ctx := need(t)
	r := m.Run(ctx, "root", "portclaim", "reconcile", "--json")
	var doc struct{ Users, Notes, Errors json.RawMessage }
	if err := json.Unmarshal([]byte(r.Stdout), &doc); err != nil {
		t.Fatalf("reconcile --json: %v\n%s", err, r)
	}
	var users []struct{ User string }
	for name, raw := range map[string]json.RawMessage{"users": doc.Users, "notes": doc.Notes, "errors": doc.Errors} {
		if !strings.HasPrefix(strings.TrimSpace(string(raw)), "[") {
			t.Errorf("reconcile --json: %q is %s, want a list (empty: nothing to do)\n%s", name, raw, r)
		}
	}
	if err := json.Unmarshal(doc.Users, &users); err != nil {
		t.Fatalf("reconcile --json users: %v\n%s", err, r)
	}
	out := m.Run(ctx, "root", "portclaim", "reconcile", "--verbose").Stdout
	if len(users) == 0 {
		contains(t, "reconcile --verbose", out, "nothing to do")
		return
	}
	// Releases other scenarios left under way: it names them instead.
	lacks(t, "reconcile --verbose", out, "nothing to do")
	contains(t, "reconcile --verbose", out, users[0].User+": ")
}
