package e2e

// Trust II: what root reads of a user's links.

import (
	"context"
	"strings"
	"testing"
)

// TestRootFollowsNoStoreLinkBackOut: alice's manifest links into the Nix
// store, to a store path that is itself a link to root's 0600 file (any
// user can build such a path on NixOS). Root reads nothing of it: the
// whole chain must stay in the store.
func TestRootFollowsNoStoreLinkBackOut(t *testing.T) {
	ctx := need(t)
	secret := `{"version":1,"services":[{"name":"s3cr3t-token","userUnits":["x.service"],"ports":[{"port":7415}]}]}`
	if err := m.WriteFile("/root/secret.json", []byte(secret), 0o600, ""); err != nil {
		t.Fatal(err)
	}
	const evil = "/nix/store/0000000000000000000000000000000a-evil"
	must(t, ctx, "root", "ln", "-sfn", "/root/secret.json", evil)
	must(t, ctx, "alice", "sh", "-c", "mkdir -p ~/.config/portclaim && ln -sfn "+evil+" ~/.config/portclaim/manifest.json")
	t.Cleanup(func() {
		ctx := context.Background()
		m.Run(ctx, "alice", "rm", "-rf", "/home/alice/.config/portclaim")
		m.Run(ctx, "root", "rm", "-f", evil, "/root/secret.json")
	})
	out, code := portclaim(t, ctx, "root", nil, "check", "--user", "alice")
	if code != 2 || strings.Contains(out, "s3cr3t") || !strings.Contains(out, "out of /nix/store") {
		t.Errorf("root's check of alice, her manifest a store link out of the store: exit %d\n%s", code, out)
	}
	prom := must(t, ctx, "root", "portclaim", "status", "--format", "prometheus")
	if strings.Contains(prom, `portclaim_checked{user="alice"} 1`) {
		t.Errorf("the metrics tell whether root's file is a manifest:\n%s", prom)
	}
}
