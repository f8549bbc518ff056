package e2e

// Trust II: what reconcile believes of the user database.

import (
	"context"
	"testing"
)

// TestAUserNotFoundBeforeTheLookupsAreUpKeepsTheClaims: a network user
// (LDAP, sssd) is not found while the lookup service is not up. That is
// not a user removed: reconcile keeps the claims until a lookup can say.
func TestAUserNotFoundBeforeTheLookupsAreUpKeepsTheClaims(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-t-nss.service", "", true, false, "tcp4:127.0.0.1:7412")
	must(t, ctx, "root", "useradd", "-m", "-u", "1003", "dave")
	t.Cleanup(func() { m.Run(context.Background(), "root", "userdel", "-r", "dave") })
	path := manifest(t, "t-nss", oneService("t-nss", "pc-t-nss.service", "podman-t-nss.service", 7412, ""))
	if out, code := portclaim(t, ctx, "dave", nil, "resolve", "--manifest", path); code != 0 || isActive(ctx, "pc-t-nss.service") != "inactive" {
		t.Fatalf("dave's resolve: exit %d\n%s", code, out)
	}
	// dave now comes from the network (sss), whose lookups are not up.
	must(t, ctx, "root", "sh", "-c", `cp /etc/passwd /run/passwd.t && sed -i '/^dave:/d' /etc/passwd &&
		cp /etc/nsswitch.conf /run/nsswitch.t && sed -i 's/^passwd:.*/passwd: files sss/' /etc/nsswitch.conf`)
	t.Cleanup(func() {
		m.Run(context.Background(), "root", "sh", "-c", "cp /run/passwd.t /etc/passwd; cp /run/nsswitch.t /etc/nsswitch.conf")
	})
	m.Run(ctx, "root", "systemctl", "restart", "portclaim-reconcile.service")
	if s := isActive(ctx, "pc-t-nss.service"); s != "inactive" {
		t.Errorf("a user not found before the lookups are up counted as removed: pc-t-nss.service is %s", s)
	}
	if _, ok := readClaimIn(t, ctx, claimsDir+"/dave", "pc-t-nss.service"); !ok {
		t.Error("dave's claim is gone")
	}
	checkInvariant(t, ctx, claimsDir, "pc-t-nss.service")
	// Only files answer: dave is gone, and reconcile gives back.
	must(t, ctx, "root", "cp", "/run/nsswitch.t", "/etc/nsswitch.conf")
	m.Run(ctx, "root", "systemctl", "restart", "portclaim-reconcile.service")
	if s := isActive(ctx, "pc-t-nss.service"); s != "active" {
		t.Errorf("dave removed: pc-t-nss.service is %s", s)
	}
}

// TestRootTalksOnlyToTheUsersOwnManager: a socket at alice's manager's
// place that she owns but another uid serves (what a link swapped in
// after root looked, to the system manager's, would give) is not talked
// to as root: root's check says so and asks it nothing.
func TestRootTalksOnlyToTheUsersOwnManager(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-t-peer.service", "", true, false, "tcp4:127.0.0.1:7433")
	userUnit(t, ctx, "alice", "podman-t-peer.service", "tcp::7433")
	path := manifest(t, "t-peer", oneService("t-peer", "pc-t-peer.service", "podman-t-peer.service", 7433, ""))
	must(t, ctx, "root", "sh", "-c", "cd /run/user/1000/systemd && mv private private.real && "+
		"(holdport unix:/run/user/1000/systemd/private >/dev/null 2>&1 & echo $! > /tmp/peer.pid)")
	t.Cleanup(func() {
		// holdport unlinks its socket as it exits: the real one goes back
		// once it has.
		m.Run(context.Background(), "root", "sh", "-c", "pid=$(cat /tmp/peer.pid); kill $pid; while kill -0 $pid 2>/dev/null; do sleep 0.05; done; "+
			"cd /run/user/1000/systemd && rm -f private && mv private.real private")
	})
	waitFor(t, ctx, "root", "test -S /run/user/1000/systemd/private")
	must(t, ctx, "root", "chown", "alice:alice", "/run/user/1000/systemd/private")
	out, _ := portclaim(t, ctx, "root", nil, "check", "--user", "alice", "--manifest", path)
	contains(t, "root's check of alice", out, "runs as uid 0, not 1000; not talking to it as root")
}
