package e2e

// Trust II: a release deferred is not forgotten.

import (
	"testing"
)

// TestADeferredReleaseIsKept: `release --all` while her own unit holds
// the port defers; the intent is root's record, kept down meanwhile (a
// target's start does not start the unit into the held port), shown by
// status, and completed by the next `release` (or reconcile, or a yield
// of another of her units) once the port is free, although the manifest
// still names the unit.
func TestADeferredReleaseIsKept(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-t-defer.service", "", true, true, "tcp4:127.0.0.1:7411")
	userUnit(t, ctx, "alice", "podman-t-defer.service", "tcp::7411")
	path := manifest(t, "t-defer", oneService("t-defer", "pc-t-defer.service", "podman-t-defer.service", 7411, ""))
	// Another service of hers, whose yield finishes what waits too.
	systemUnit(t, ctx, "pc-t-defer2.service", "", true, false, "tcp4:127.0.0.1:7432")
	other := manifest(t, "t-defer2", oneService("t-defer2", "pc-t-defer2.service", "podman-t-defer2.service", 7432, ""))
	for _, finish := range []string{"release", "reconcile", "yield"} {
		t.Run(finish, func(t *testing.T) {
			if out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path); code != 0 || isActive(ctx, "pc-t-defer.service") != "inactive" {
				t.Fatalf("resolve: exit %d\n%s", code, out)
			}
			userctl(t, ctx, "alice", "start", "podman-t-defer.service")
			waitListening(t, ctx, "tcp:*:7411")
			out, _ := portclaim(t, ctx, "alice", nil, "release", "--all")
			// The hint names what really finishes it.
			contains(t, "release --all", out, "deferred pc-t-defer.service: 7411/tcp is still held",
				"then the next `portclaim release` gives it back (as do home-manager's next switch and reconcile at boot)")
			must(t, ctx, "root", "systemctl", "start", "multi-user.target")
			if s := isActive(ctx, "pc-t-defer.service"); s != "inactive" {
				t.Fatalf("while the release waits, a start of multi-user.target started the unit (%s)", s)
			}
			status, _ := portclaim(t, ctx, "alice", nil, "status")
			contains(t, "status", status, "pc-t-defer.service", "asked back, waiting: 7411/tcp is still held")
			metrics := must(t, ctx, "root", "portclaim", "status", "--format", "prometheus")
			contains(t, "the metrics", metrics, `portclaim_release_pending{user="alice",unit="pc-t-defer.service"} 1`)
			checkInvariant(t, ctx, claimsDir, "pc-t-defer.service")
			userctl(t, ctx, "alice", "stop", "podman-t-defer.service")
			switch finish {
			case "release":
				out, _ = portclaim(t, ctx, "alice", nil, "release", "--manifest", path)
			case "reconcile":
				out = must(t, ctx, "root", "sh", "-c", "systemctl restart portclaim-reconcile.service; journalctl --no-pager -n 20 -u portclaim-reconcile.service")
			case "yield":
				out, _ = portclaim(t, ctx, "alice", nil, "resolve", "--manifest", other)
				if s := isActive(ctx, "pc-t-defer2.service"); s != "inactive" {
					t.Errorf("the other yield: pc-t-defer2.service is %s\n%s", s, out)
				}
			}
			if s := isActive(ctx, "pc-t-defer.service"); s != "active" {
				t.Fatalf("once the port is free, %s did not finish the deferred release (%s)\n%s", finish, s, out)
			}
			if _, ok := readClaim(t, ctx, "pc-t-defer.service"); ok {
				t.Error("the record stayed")
			}
		})
	}
}
