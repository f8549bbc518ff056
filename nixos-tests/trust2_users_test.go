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
