package e2e

import (
	"context"
	"testing"
)

func init() {
	yieldTo["pc-fin-a.service"] = []string{"alice"}
	yieldTo["pc-fin-b.service"] = []string{"alice"}
	yieldTo["pc-fin-c.service"] = []string{"alice"}
}

// TestAYieldSaysWhatEarlierReleasesCameTo: alice's release of pc-fin-a
// failed (its record waits in .releasing); her next yield, of another
// unit, finishes that release first, and its answer says so, done or not,
// instead of starting units unsaid.
func TestAYieldSaysWhatEarlierReleasesCameTo(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-fin-a.service", "ExecStartPre=/bin/sh -c 'test ! -e /run/pc-fin-broken'", true, false, "tcp4:127.0.0.1:7274")
	systemUnit(t, ctx, "pc-fin-b.service", "", true, false, "tcp4:127.0.0.1:7275")
	systemUnit(t, ctx, "pc-fin-c.service", "", true, false, "tcp4:127.0.0.1:7276")
	t.Cleanup(func() { m.Run(context.Background(), "root", "rm", "-f", "/run/pc-fin-broken") })
	a := manifest(t, "fin-a", oneService("fin-a", "pc-fin-a.service", "podman-fin-a.service", 7274, ""))
	if out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", a); code != 0 || isActive(ctx, "pc-fin-a.service") != "inactive" {
		t.Fatalf("resolve: exit %d\n%s", code, out)
	}
	must(t, ctx, "root", "touch", "/run/pc-fin-broken")
	portclaim(t, ctx, "alice", nil, "release", "--all")
	if _, ok := readClaimIn(t, ctx, claimsDir+"/alice/.releasing", "pc-fin-a.service"); !ok {
		t.Fatal("the failed release left no record")
	}
	// Still broken: the yield of pc-fin-b tries pc-fin-a's release again,
	// which fails again, and says so.
	b := manifest(t, "fin-b", oneService("fin-b", "pc-fin-b.service", "podman-fin-b.service", 7275, ""))
	out, _ := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", b)
	contains(t, "resolve of pc-fin-b", out, "your earlier release of pc-fin-a.service was finished first: failed: starting it:", "yielded  pc-fin-b.service")
	// Mended: the next yield brings it back, and says that.
	must(t, ctx, "root", "rm", "/run/pc-fin-broken")
	c := manifest(t, "fin-c", oneService("fin-c", "pc-fin-c.service", "podman-fin-c.service", 7276, ""))
	out, _ = portclaim(t, ctx, "alice", nil, "resolve", "--manifest", c)
	contains(t, "the next resolve", out, "your earlier release of pc-fin-a.service was finished first: restarted: started again", "yielded  pc-fin-c.service")
	if s := isActive(ctx, "pc-fin-a.service"); s != "active" {
		t.Errorf("pc-fin-a.service is %s\n%s", s, out)
	}
}
