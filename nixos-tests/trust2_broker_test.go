package e2e

// Trust II: what root and the broker read and tell.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portclaim/portclaim/nixos-tests/fixture"
)

// TestTheBrokerTellsOnlyWhatTheCallerMaySee: with /proc mounted
// hidepid=invisible bob sees none of alice's processes, so the broker
// names another user's socket by its uid alone; and it names the holder
// of the caller's own socket as `who` does, not by the unit's lowest pid.
func TestTheBrokerTellsOnlyWhatTheCallerMaySee(t *testing.T) {
	ctx := need(t)
	userUnit(t, ctx, "alice", "pc-t-secret.service", "tcp::7408")
	userctl(t, ctx, "alice", "start", "pc-t-secret.service")
	waitListening(t, ctx, "tcp:*:7408")
	systemUnit(t, ctx, "pc-t-probe.service", "", true, false, "tcp4:127.0.0.1:7409")
	must(t, ctx, "root", "mount", "-o", "remount,hidepid=invisible", "/proc")
	t.Cleanup(func() { m.Run(context.Background(), "root", "mount", "-o", "remount,hidepid=0", "/proc") })
	if seen := must(t, ctx, "bob", "sh", "-c", `grep -l "^Uid:.1000" /proc/[0-9]*/status 2>/dev/null | wc -l`); strings.TrimSpace(seen) != "0" {
		t.Fatalf("bob sees %s of alice's processes", seen)
	}
	answer := ask(t, ctx, "bob", yieldRequest("pc-t-probe.service", 7408))
	if strings.Contains(answer, "pc-t-secret") || strings.Contains(answer, "holdport") || !strings.Contains(answer, "uid 1000") {
		t.Errorf("the broker told bob about alice's socket: %s", answer)
	}
	checkInvariant(t, ctx, claimsDir, "pc-t-probe.service")
	portclaim(t, ctx, "bob", nil, "release", "--all")
	must(t, ctx, "root", "mount", "-o", "remount,hidepid=0", "/proc")

	// A system unit that runs as alice (User=alice) is hers as much: with
	// /proc open to him again, bob still learns its uid, not its name.
	systemUnit(t, ctx, "pc-t-alice-sys.service", "User=alice", true, false, "tcp4:127.0.0.1:7431")
	answer = ask(t, ctx, "bob", yieldRequest("pc-t-probe.service", 7431))
	if strings.Contains(answer, "pc-t-alice-sys") || strings.Contains(answer, "holdport") || !strings.Contains(answer, "uid 1000") {
		t.Errorf("the broker named alice's system unit to bob: %s", answer)
	}
	portclaim(t, ctx, "bob", nil, "release", "--all")

	// alice's own unit, whose first process is not the listener.
	systemUnit(t, ctx, "pc-t-own-sys.service", "", true, false, "tcp4:127.0.0.1:7410")
	if err := fixture.UserUnit(m, "alice", "podman-t-own.service", "[Service]\nExecStart=/bin/sh -c 'holdport tcp::7410 & exec sleep infinity'\n"); err != nil {
		t.Fatal(err)
	}
	userctl(t, ctx, "alice", "daemon-reload")
	t.Cleanup(func() {
		ctx := context.Background()
		m.RunEnv(ctx, "alice", userEnv("alice"), "systemctl", "--user", "stop", "podman-t-own.service")
		os.Remove(filepath.Join(m.Root(), "/home/alice/.config/systemd/user/podman-t-own.service"))
		m.RunEnv(ctx, "alice", userEnv("alice"), "systemctl", "--user", "daemon-reload")
	})
	path := manifest(t, "t-own", oneService("t-own", "pc-t-own-sys.service", "podman-t-own.service", 7410, ""))
	if out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path); code != 0 || isActive(ctx, "pc-t-own-sys.service") != "inactive" {
		t.Fatalf("resolve: exit %d\n%s", code, out)
	}
	userctl(t, ctx, "alice", "start", "podman-t-own.service")
	waitListening(t, ctx, "tcp:*:7410")
	listener := strings.TrimSpace(must(t, ctx, "root", "sh", "-c",
		`for p in /proc/[0-9]*; do test "$(tr '\0' ' ' < $p/cmdline 2>/dev/null)" = "holdport tcp::7410 " && basename $p; done; true`))
	who, _ := portclaim(t, ctx, "alice", nil, "who", "7410")
	want := fmt.Sprintf("user alice's podman-t-own.service (pid %s holdport", listener)
	contains(t, "alice's who", who, want)
	out, _ := portclaim(t, ctx, "alice", nil, "release", "--all")
	contains(t, "alice's release", out, "deferred pc-t-own-sys.service: 7410/tcp is still held at [::]:7410 by "+want+")")
	checkInvariant(t, ctx, claimsDir, "pc-t-own-sys.service")
}

// TestAFloodOfUnnamedUidsNeitherKillsNorBlocksTheBroker: hundreds of
// uids without a user name (a rootless container's subordinate uids)
// connect at once, again and again: the broker, within its TasksMax and
// MemoryMax, neither dies nor keeps alice out.
func TestAFloodOfUnnamedUidsNeitherKillsNorBlocksTheBroker(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-t-flood.service", "", true, false, "tcp4:127.0.0.1:7414")
	path := manifest(t, "t-flood", oneService("t-flood", "pc-t-flood.service", "podman-t-flood.service", 7414, ""))
	// Lookups as slow as a network directory's (sssd, LDAP): each uid's
	// takes a second. (The broker asks NixOS's getent first.)
	must(t, ctx, "root", "sh", "-c", `mkdir -p /run/current-system/sw/bin && printf '#!/bin/sh\necho "$2" >> /run/pc-getent.calls\nsleep 1\nexec /usr/bin/getent "$@"\n' > /run/current-system/sw/bin/getent && chmod 755 /run/current-system/sw/bin/getent`)
	t.Cleanup(func() {
		m.Run(context.Background(), "root", "rm", "-rf", "/run/current-system", "/run/pc-getent.calls")
	})
	must(t, ctx, "root", "systemctl", "stop", "portclaim.service")
	must(t, ctx, "root", "systemctl", "reset-failed", "portclaim.service")
	since := strings.TrimSpace(must(t, ctx, "root", "date", "+%Y-%m-%d %H:%M:%S"))
	must(t, ctx, "root", "sh", "-c", `for round in 1 2 3; do for u in $(seq 300000 300199); do
		setpriv --reuid=$u --regid=$u --clear-groups timeout 60 holdport dial:/run/portclaim/broker.sock dial:/run/portclaim/broker.sock >/dev/null 2>&1 &
		echo $! >> /tmp/flood.pids
	done; done; echo started`)
	t.Cleanup(func() {
		m.Run(context.Background(), "root", "sh", "-c", "kill $(cat /tmp/flood.pids) 2>/dev/null; rm -f /tmp/flood.pids")
	})
	// The flood reaches the broker: it looks names up.
	waitFor(t, ctx, "root", "test -s /run/pc-getent.calls")
	// alice, named by the local files, is answered at her first try, while
	// the flood's connections are still open.
	if out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path); code != 0 || isActive(ctx, "pc-t-flood.service") != "inactive" {
		t.Fatalf("alice's resolve during the flood: exit %d\n%s", code, out)
	}
	alive := must(t, ctx, "root", "sh", "-c", "for p in $(cat /tmp/flood.pids); do kill -0 $p 2>/dev/null && echo $p; done | wc -l")
	if strings.TrimSpace(alive) == "0" {
		t.Error("the flood was over before alice's resolve: the test shows nothing")
	}
	checkInvariant(t, ctx, claimsDir, "pc-t-flood.service")
	portclaim(t, ctx, "alice", nil, "release", "--all")
	if s := isActive(ctx, "pc-t-flood.service"); s != "active" {
		t.Errorf("alice's release during the flood: %s", s)
	}
	journal := must(t, ctx, "root", "journalctl", "--no-pager", "-u", "portclaim.service", "--since", since)
	for _, bad := range []string{"failed to create new OS thread", "fatal error", "out of memory", "Failed with result", "core-dump"} {
		if strings.Contains(journal, bad) {
			t.Errorf("the broker died in the flood (%q):\n%s", bad, journal)
		}
	}
}
