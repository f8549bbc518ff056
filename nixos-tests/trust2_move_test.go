package e2e

// Trust II: moving services.portclaim.claimsDir.

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/portclaim/portclaim/nixos-tests/fixture"
)

// replaySwitch switches the machine from old to new in the order
// nixos-rebuild's switch-to-configuration does: the changed units that
// run are stopped (portclaim's units have no X-StopIfChanged=false), the
// files replaced, systemd reloaded, then the active targets started
// together with the stopped units, in one go. The broker, socket-activated,
// is left running: one may outlive a switch.
func replaySwitch(t *testing.T, ctx context.Context, old, new fixture.Files) {
	t.Helper()
	since := strings.TrimSpace(must(t, ctx, "root", "date", "+%Y-%m-%d %H:%M:%S"))
	var stopped []string
	for p, f := range new {
		unit := filepath.Base(p)
		if filepath.Dir(p) != "/etc/systemd/system" || !strings.HasPrefix(unit, "portclaim-") || old[p] == f {
			continue
		}
		if isActive(ctx, unit) == "active" {
			must(t, ctx, "root", "systemctl", "stop", unit)
		}
		stopped = append(stopped, unit)
	}
	if _, err := fixture.Activate(m, old, new); err != nil {
		t.Fatal(err)
	}
	must(t, ctx, "root", "systemctl", "daemon-reload")
	must(t, ctx, "root", "systemd-tmpfiles", "--create", "/etc/tmpfiles.d/portclaim.conf")
	r := m.Run(ctx, "root", append([]string{"systemctl", "start", "multi-user.target", "sockets.target"}, stopped...)...)
	t.Logf("the switch's start of the targets and %v: exit %d %s", stopped, r.ExitCode, r.Stderr)
	// The drop-ins' order after the mover must not make a cycle with
	// sockets.target or anything a target starts.
	if j := must(t, ctx, "root", "journalctl", "--no-pager", "--since", since); strings.Contains(j, "ordering cycle") {
		t.Errorf("the switch found an ordering cycle:\n%s", j)
	}
}

// TestMovingTheClaimsDirectoryCarriesTheClaims: a switch to a new
// services.portclaim.claimsDir carries the claims over before anything
// else runs (the switch's start of multi-user.target would start a unit
// whose condition no longer sees its record); status shows them there,
// release acts on them, and a broker that outlived the switch does not
// answer "read-only file system".
func TestMovingTheClaimsDirectoryCarriesTheClaims(t *testing.T) {
	ctx := need(t)
	const moved = "/var/lib/portclaim/moved"
	systemUnit(t, ctx, "pc-t-mv.service", "", true, true, "tcp4:127.0.0.1:7401")
	path := manifest(t, "t-mv", oneService("t-mv", "pc-t-mv.service", "podman-t-mv.service", 7401, ""))
	if out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path); code != 0 || isActive(ctx, "pc-t-mv.service") != "inactive" {
		t.Fatalf("resolve: exit %d\n%s", code, out)
	}
	elsewhere, err := fixture.RenderIn(ctx, yieldTo, moved)
	if err != nil {
		t.Fatal(err)
	}
	ask(t, ctx, "alice", `{"version":1,"op":"status"}`) // a broker runs, and outlives the switch
	replaySwitch(t, ctx, installed, elsewhere)
	t.Cleanup(func() {
		replaySwitch(t, context.Background(), elsewhere, installed)
		m.Run(context.Background(), "root", "rm", "-rf", moved)
	})
	if s := isActive(ctx, "pc-t-mv.service"); s != "inactive" {
		t.Fatalf("after the switch to a new claimsDir pc-t-mv.service is %s", s)
	}
	if _, ok := readClaimIn(t, ctx, moved+"/alice", "pc-t-mv.service"); !ok {
		t.Errorf("the claim was not carried to %s", moved)
	}
	if _, ok := readClaim(t, ctx, "pc-t-mv.service"); ok {
		t.Errorf("the claim stayed in %s as well", claimsDir)
	}
	checkInvariant(t, ctx, moved, "pc-t-mv.service")
	status, _ := portclaim(t, ctx, "alice", nil, "status")
	contains(t, "alice's status", status, "claims in "+moved, "claim: pc-t-mv.service yields to alice")
	out, _ := portclaim(t, ctx, "alice", nil, "release", "--all")
	if strings.Contains(out, "read-only file system") || isActive(ctx, "pc-t-mv.service") != "active" {
		t.Errorf("release after the move: unit %s\n%s", isActive(ctx, "pc-t-mv.service"), out)
	}
	// And back: a claim made in the new directory goes with the next move.
	if out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path); code != 0 || isActive(ctx, "pc-t-mv.service") != "inactive" {
		t.Fatalf("resolve in the new directory: exit %d\n%s", code, out)
	}
	replaySwitch(t, ctx, elsewhere, installed)
	if s := isActive(ctx, "pc-t-mv.service"); s != "inactive" {
		t.Errorf("after the switch back pc-t-mv.service is %s", s)
	}
	if _, ok := readClaim(t, ctx, "pc-t-mv.service"); !ok {
		t.Errorf("the claim was not carried back to %s", claimsDir)
	}
	checkInvariant(t, ctx, claimsDir, "pc-t-mv.service")
	replaySwitch(t, ctx, installed, elsewhere) // for the cleanup's switch back
}

// TestAMoveStoppedHalfWayHidesNothing: the move killed after one record
// of two: status shows both, where they are; nothing acts on the new
// directory until the move is finished, and the next run of the mover
// (a restart of reconcile, the next boot) finishes it.
func TestAMoveStoppedHalfWayHidesNothing(t *testing.T) {
	ctx := need(t)
	const moved = "/var/lib/portclaim/moved"
	for i, unit := range []string{"pc-t-mv2.service", "pc-t-mv3.service"} {
		systemUnit(t, ctx, unit, "", true, false, fmt.Sprintf("tcp4:127.0.0.1:%d", 7416+i))
		path := manifest(t, unit, oneService(strings.TrimSuffix(unit, ".service"), unit, "podman-"+unit, 7416+i, ""))
		if out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path); code != 0 || isActive(ctx, unit) != "inactive" {
			t.Fatalf("resolve %s: exit %d\n%s", unit, code, out)
		}
	}
	elsewhere, err := fixture.RenderIn(ctx, yieldTo, moved)
	if err != nil {
		t.Fatal(err)
	}
	// The switch's files, and what a mover killed after its first record
	// leaves: one record moved, the note still naming the old directory.
	if _, err := fixture.Activate(m, installed, elsewhere); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		if _, err := fixture.Activate(m, elsewhere, installed); err != nil {
			t.Error(err)
		}
		m.Run(ctx, "root", "systemctl", "daemon-reload")
		m.Run(ctx, "root", "systemctl", "restart", "portclaim-reconcile.service")
		m.Run(ctx, "root", "rm", "-rf", moved)
	})
	must(t, ctx, "root", "sh", "-c", "systemctl daemon-reload && mkdir -p "+moved+"/alice && mv "+claimsDir+"/alice/pc-t-mv2.service "+moved+"/alice/")
	status := must(t, ctx, "root", "portclaim", "status")
	contains(t, "root's status", status, "claims: still in "+claimsDir, "claim: pc-t-mv2.service yields to alice", "claim: pc-t-mv3.service yields to alice")
	out, _ := portclaim(t, ctx, "alice", nil, "release", "--all")
	contains(t, "a release during the move", out, "being moved")
	if isActive(ctx, "pc-t-mv2.service") != "inactive" || isActive(ctx, "pc-t-mv3.service") != "inactive" {
		t.Fatalf("a release during the move changed something\n%s", out)
	}
	// The next run of reconcile (what its unit runs) finishes the move;
	// with --json, what it did is one document, its note included.
	var doc struct{ Notes []string }
	js := must(t, ctx, "root", "portclaim", "reconcile", "--json")
	if err := json.Unmarshal([]byte(js), &doc); err != nil || !slices.ContainsFunc(doc.Notes, func(n string) bool { return strings.HasPrefix(n, "moved 1 claim record from "+claimsDir) }) {
		t.Errorf("reconcile --json after a move stopped half way: %v\n%s", err, js)
	}
	for _, unit := range []string{"pc-t-mv2.service", "pc-t-mv3.service"} {
		if _, ok := readClaimIn(t, ctx, moved+"/alice", unit); !ok {
			t.Errorf("%s's record was not moved by the next run", unit)
		}
	}
	checkInvariant(t, ctx, moved, "pc-t-mv2.service", "pc-t-mv3.service")
	out, _ = portclaim(t, ctx, "alice", nil, "release", "--all")
	if isActive(ctx, "pc-t-mv2.service") != "active" || isActive(ctx, "pc-t-mv3.service") != "active" {
		t.Errorf("release after the move was finished:\n%s", out)
	}
}
