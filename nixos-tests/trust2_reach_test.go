package e2e

// Trust II: what a stop triggers, what a start pulls in, a unit by two names.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAStopDoesNotTriggerUnitsOutsideThePolicy: a unit whose stop starts
// another (OnSuccess=, or OnFailure= when its ExecStop= fails) reaches
// what that one does: a hook that Conflicts= with a running unit would
// stop it, with no record. The broker refuses as it refuses dependents;
// a hook in the policy that stops nothing runs.
func TestAStopDoesNotTriggerUnitsOutsideThePolicy(t *testing.T) {
	ctx := need(t)
	installUnit(t, ctx, "pc-t-victim.service", "[Service]\nExecStart=/bin/sleep infinity\n", false)
	installUnit(t, ctx, "pc-t-hook.service", "Conflicts=pc-t-victim.service\n[Service]\nType=oneshot\nExecStart=/bin/true\n", false)
	systemUnit(t, ctx, "pc-t-hook-main.service", "", false, false, "tcp4:127.0.0.1:7402")
	must(t, ctx, "root", "sh", "-c", `mkdir -p /etc/systemd/system/pc-t-hook-main.service.d && printf '[Unit]\nOnSuccess=pc-t-hook.service\n' > /etc/systemd/system/pc-t-hook-main.service.d/hook.conf && systemctl daemon-reload`)
	t.Cleanup(func() {
		m.Run(context.Background(), "root", "rm", "-f", "/etc/systemd/system/pc-t-hook-main.service.d/hook.conf")
	})
	must(t, ctx, "root", "systemctl", "start", "pc-t-victim.service", "pc-t-hook-main.service")
	waitListening(t, ctx, "tcp4:127.0.0.1:7402")
	path := manifest(t, "t-hook", oneService("t-hook", "pc-t-hook-main.service", "podman-t-hook.service", 7402, ""))
	out, _ := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path)
	contains(t, "resolve", out, "refused:", "pc-t-hook.service (OnSuccess= of pc-t-hook-main.service)", "nothing was changed")
	if a, v := isActive(ctx, "pc-t-hook-main.service"), isActive(ctx, "pc-t-victim.service"); a != "active" || v != "active" {
		t.Errorf("after the refusal: pc-t-hook-main.service %s, pc-t-victim.service %s; want both left alone\n%s", a, v, out)
	}

	// An ExecStop= that fails leaves the unit failed: OnFailure= starts.
	installUnit(t, ctx, "pc-t-onfail.service", "[Service]\nType=oneshot\nExecStart=/bin/true\nRemainAfterExit=yes\n", false)
	systemUnit(t, ctx, "pc-t-fail-main.service", "ExecStop=/bin/false", false, false, "tcp4:127.0.0.1:7403")
	must(t, ctx, "root", "sh", "-c", `mkdir -p /etc/systemd/system/pc-t-fail-main.service.d && printf '[Unit]\nOnFailure=pc-t-onfail.service\n' > /etc/systemd/system/pc-t-fail-main.service.d/hook.conf && systemctl daemon-reload && systemctl start pc-t-fail-main.service`)
	t.Cleanup(func() {
		m.Run(context.Background(), "root", "rm", "-f", "/etc/systemd/system/pc-t-fail-main.service.d/hook.conf")
	})
	waitListening(t, ctx, "tcp4:127.0.0.1:7403")
	fpath := manifest(t, "t-fail", oneService("t-fail", "pc-t-fail-main.service", "podman-t-fail.service", 7403, ""))
	out, _ = portclaim(t, ctx, "alice", nil, "resolve", "--manifest", fpath)
	contains(t, "resolve", out, "refused:", "pc-t-onfail.service (OnFailure= of pc-t-fail-main.service)",
		`services.portclaim.yield."pc-t-onfail.service".users = [ "alice" ];`)
	if a, h := isActive(ctx, "pc-t-fail-main.service"), isActive(ctx, "pc-t-onfail.service"); a != "active" || h != "inactive" {
		t.Errorf("after the refusal: pc-t-fail-main.service %s, pc-t-onfail.service %s\n%s", a, h, out)
	}

	// A hook the policy names, that stops nothing, may run.
	installUnit(t, ctx, "pc-t-ok-hook.service", "[Service]\nType=oneshot\nExecStart=/bin/touch /run/pc-t-ok-hook-ran\n", false)
	systemUnit(t, ctx, "pc-t-ok-main.service", "", false, false, "tcp4:127.0.0.1:7404")
	must(t, ctx, "root", "sh", "-c", `mkdir -p /etc/systemd/system/pc-t-ok-main.service.d && printf '[Unit]\nOnSuccess=pc-t-ok-hook.service\n' > /etc/systemd/system/pc-t-ok-main.service.d/hook.conf && systemctl daemon-reload && systemctl start pc-t-ok-main.service`)
	t.Cleanup(func() {
		m.Run(context.Background(), "root", "rm", "-f", "/etc/systemd/system/pc-t-ok-main.service.d/hook.conf", "/run/pc-t-ok-hook-ran")
	})
	waitListening(t, ctx, "tcp4:127.0.0.1:7404")
	opath := manifest(t, "t-ok", oneService("t-ok", "pc-t-ok-main.service", "podman-t-ok.service", 7404, ""))
	if out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", opath); code != 0 || isActive(ctx, "pc-t-ok-main.service") != "inactive" {
		t.Errorf("a yield whose hook the policy names: exit %d, unit %s\n%s", code, isActive(ctx, "pc-t-ok-main.service"), out)
	}
	waitFor(t, ctx, "root", "test -e /run/pc-t-ok-hook-ran")
	portclaim(t, ctx, "alice", nil, "release", "--all")
	checkInvariant(t, ctx, claimsDir, "pc-t-hook-main.service", "pc-t-victim.service", "pc-t-fail-main.service", "pc-t-ok-main.service")
}

// TestAReleaseStartsNothingOutsideThePolicy: what a release's start
// pulls in and is not running, and the policy does not name, is a side
// effect the user may not cause: a Wants= is skipped, a Requires= defers
// the release; units the policy names (a family such as ollama and its
// model loader) come back together.
func TestAReleaseStartsNothingOutsideThePolicy(t *testing.T) {
	ctx := need(t)
	must(t, ctx, "root", "systemctl", "start", "user@1001.service")
	t.Cleanup(func() { m.Run(context.Background(), "root", "systemctl", "stop", "user@1001.service") })
	installUnit(t, ctx, "pc-t-extra.service", "[Service]\nExecStart=/bin/sleep infinity\n", false)
	systemUnit(t, ctx, "pc-t-q.service", "", false, false, "tcp4:127.0.0.1:7405")
	// (A Wants= of a unit that does not exist is no side effect.)
	dropIn(t, ctx, "pc-t-q.service", "[Unit]\nWants=pc-t-extra.service pc-t-nowhere.service\n")
	must(t, ctx, "root", "systemctl", "start", "pc-t-q.service")
	waitListening(t, ctx, "tcp4:127.0.0.1:7405")
	rootStop(t, ctx, "pc-t-extra.service") // root wants it down
	path := manifest(t, "t-q", oneService("t-q", "pc-t-q.service", "podman-t-q.service", 7405, ""))
	for i := 0; i < 2; i++ { // as often as he likes
		if out, code := portclaim(t, ctx, "bob", nil, "resolve", "--manifest", path); code != 0 || isActive(ctx, "pc-t-q.service") != "inactive" {
			t.Fatalf("bob's resolve: exit %d\n%s", code, out)
		}
		out, _ := portclaim(t, ctx, "bob", nil, "release", "--all")
		if q, x := isActive(ctx, "pc-t-q.service"), isActive(ctx, "pc-t-extra.service"); q != "active" || x != "inactive" {
			t.Fatalf("bob's release: pc-t-q.service %s, pc-t-extra.service %s; want it back without what root stopped\n%s", q, x, out)
		}
		contains(t, "bob's release", out, "without pc-t-extra.service (Wants=)")
		if strings.Contains(out, "pc-t-nowhere") {
			t.Errorf("a unit that does not exist counted as left out:\n%s", out)
		}
	}

	// A Requires= outside the policy that is down: started without it,
	// the unit may be broken. The release waits, and says why.
	installUnit(t, ctx, "pc-t-req.service", "[Service]\nExecStart=/bin/sleep infinity\n", false)
	systemUnit(t, ctx, "pc-t-q2.service", "", false, false, "tcp4:127.0.0.1:7406")
	dropIn(t, ctx, "pc-t-q2.service", "[Unit]\nRequires=pc-t-req.service\nAfter=pc-t-req.service\n")
	must(t, ctx, "root", "systemctl", "start", "pc-t-q2.service")
	waitListening(t, ctx, "tcp4:127.0.0.1:7406")
	path2 := manifest(t, "t-q2", oneService("t-q2", "pc-t-q2.service", "podman-t-q2.service", 7406, ""))
	if out, code := portclaim(t, ctx, "bob", nil, "resolve", "--manifest", path2); code != 0 || isActive(ctx, "pc-t-q2.service") != "inactive" {
		t.Fatalf("bob's resolve of pc-t-q2: exit %d\n%s", code, out)
	}
	rootStop(t, ctx, "pc-t-req.service")
	out, _ := portclaim(t, ctx, "bob", nil, "release", "--all")
	contains(t, "bob's release", out, "deferred pc-t-q2.service: starting it would also start pc-t-req.service (Requires= of pc-t-q2.service)")
	if q, r := isActive(ctx, "pc-t-q2.service"), isActive(ctx, "pc-t-req.service"); q != "inactive" || r != "inactive" {
		t.Errorf("after the deferral: pc-t-q2.service %s, pc-t-req.service %s\n%s", q, r, out)
	}
	checkInvariant(t, ctx, claimsDir, "pc-t-q2.service")
	must(t, ctx, "root", "systemctl", "start", "pc-t-req.service") // root brings it back: the release goes on
	out, _ = portclaim(t, ctx, "bob", nil, "release", "--all")
	if s := isActive(ctx, "pc-t-q2.service"); s != "active" {
		t.Errorf("once pc-t-req.service runs, the release: %s\n%s", s, out)
	}

	// So does every other way a start pulls a unit in and needs it:
	// BindsTo=, Upholds= and a .requires/ link.
	for i, dep := range []struct{ kind, how string }{
		{"BindsTo=", "[Unit]\nBindsTo=%s\nAfter=%s\n"},
		{"Upholds=", "[Unit]\nUpholds=%s\n"},
		{"Requires=", "link"},
	} {
		unit, req := fmt.Sprintf("pc-t-q%d.service", i+3), fmt.Sprintf("pc-t-req%d.service", i+3)
		port := 7420 + i
		installUnit(t, ctx, req, "[Service]\nExecStart=/bin/sleep infinity\n", false)
		systemUnit(t, ctx, unit, "", false, false, fmt.Sprintf("tcp4:127.0.0.1:%d", port))
		if dep.how == "link" {
			must(t, ctx, "root", "sh", "-c", fmt.Sprintf("mkdir -p /etc/systemd/system/%[1]s.requires && ln -sf ../%[2]s /etc/systemd/system/%[1]s.requires/ && systemctl daemon-reload", unit, req))
			t.Cleanup(func() { os.RemoveAll(filepath.Join(m.Root(), "etc/systemd/system", unit+".requires")) })
		} else {
			dropIn(t, ctx, unit, strings.ReplaceAll(dep.how, "%s", req))
		}
		must(t, ctx, "root", "systemctl", "start", unit)
		waitListening(t, ctx, fmt.Sprintf("tcp4:127.0.0.1:%d", port))
		p := manifest(t, fmt.Sprintf("t-q%d", i+3), oneService(fmt.Sprintf("t-q%d", i+3), unit, fmt.Sprintf("podman-t-q%d.service", i+3), port, ""))
		if out, code := portclaim(t, ctx, "bob", nil, "resolve", "--manifest", p); code != 0 || isActive(ctx, unit) != "inactive" {
			t.Fatalf("bob's resolve of %s: exit %d\n%s", unit, code, out)
		}
		rootStop(t, ctx, req)
		out, _ := portclaim(t, ctx, "bob", nil, "release", "--all")
		contains(t, "bob's release ("+dep.kind+")", out, fmt.Sprintf("deferred %s: starting it would also start %s", unit, req))
		if q, r := isActive(ctx, unit), isActive(ctx, req); q != "inactive" || r != "inactive" {
			t.Errorf("after the deferral (%s): %s %s, %s %s\n%s", dep.kind, unit, q, req, r, out)
		}
		checkInvariant(t, ctx, claimsDir, unit)
		must(t, ctx, "root", "systemctl", "start", req)
		out, _ = portclaim(t, ctx, "bob", nil, "release", "--all")
		if s := isActive(ctx, unit); s != "active" {
			t.Errorf("once %s runs, the release (%s): %s\n%s", req, dep.kind, s, out)
		}
	}

	// A family the policy names (a service, and a loader WantedBy= and
	// BindsTo= it, as ollama's model loader) yields and comes back
	// together, without what the policy does not name.
	installUnit(t, ctx, "pc-t-fam-extra.service", "[Service]\nExecStart=/bin/sleep infinity\n", false)
	systemUnit(t, ctx, "pc-t-fam.service", "", false, false, "tcp4:127.0.0.1:7407")
	dropIn(t, ctx, "pc-t-fam.service", "[Unit]\nWants=pc-t-fam-extra.service\n")
	installUnit(t, ctx, "pc-t-fam-loader.service", "BindsTo=pc-t-fam.service\nAfter=pc-t-fam.service\n[Service]\nType=exec\nExecStart=/bin/sleep infinity\n", false)
	must(t, ctx, "root", "sh", "-c", `mkdir -p /etc/systemd/system/pc-t-fam.service.wants && ln -sf ../pc-t-fam-loader.service /etc/systemd/system/pc-t-fam.service.wants/ && systemctl daemon-reload && systemctl start pc-t-fam.service && systemctl stop pc-t-fam-extra.service`)
	t.Cleanup(func() { m.Run(context.Background(), "root", "rm", "-rf", "/etc/systemd/system/pc-t-fam.service.wants") })
	waitListening(t, ctx, "tcp4:127.0.0.1:7407")
	if s := isActive(ctx, "pc-t-fam-loader.service"); s != "active" {
		t.Fatalf("the loader is %s", s)
	}
	fpath := manifest(t, "t-fam", oneService("t-fam", "pc-t-fam.service", "podman-t-fam.service", 7407, ""))
	if out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", fpath); code != 0 || isActive(ctx, "pc-t-fam.service") != "inactive" || isActive(ctx, "pc-t-fam-loader.service") != "inactive" {
		t.Fatalf("the family's yield: exit %d\n%s", code, out)
	}
	out, _ = portclaim(t, ctx, "alice", nil, "release", "--all")
	for unit, want := range map[string]string{"pc-t-fam.service": "active", "pc-t-fam-loader.service": "active", "pc-t-fam-extra.service": "inactive"} {
		if s := isActive(ctx, unit); s != want {
			t.Errorf("after the family's release %s is %s, want %s\n%s", unit, s, want, out)
		}
	}
}

// TestAUnitNamedByAnAliasIsOneUnit: the policy names a unit by its name
// for alice and by an alias for bob. Their claims are on one unit: the
// first release leaves it down (bob's keeps it), the last brings it back.
func TestAUnitNamedByAnAliasIsOneUnit(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-t-al.service", "", false, true, "tcp4:127.0.0.1:7413")
	must(t, ctx, "root", "sh", "-c", "ln -sfn pc-t-al.service /etc/systemd/system/pc-t-alias.service && systemctl daemon-reload && systemctl start pc-t-al.service")
	t.Cleanup(func() { m.Run(context.Background(), "root", "rm", "-f", "/etc/systemd/system/pc-t-alias.service") })
	waitListening(t, ctx, "tcp4:127.0.0.1:7413")
	path := manifest(t, "t-al", oneService("t-al", "pc-t-al.service", "podman-t-al.service", 7413, ""))
	if out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path); code != 0 || isActive(ctx, "pc-t-al.service") != "inactive" {
		t.Fatalf("alice's resolve: exit %d\n%s", code, out)
	}
	answer := ask(t, ctx, "bob", yieldRequest("pc-t-alias.service", 7413))
	c, ok := readClaimIn(t, ctx, claimsDir+"/bob", "pc-t-alias.service")
	if !ok || c.Prior.ActiveState != "active" || c.Method != "condition" {
		t.Fatalf("bob's claim through the alias: %+v (exists %v); want the state before alice's claim, active, kept down by its condition\n%s", c, ok, answer)
	}
	out, _ := portclaim(t, ctx, "alice", nil, "release", "--all")
	contains(t, "alice's release", out, "it stays down: bob's claim keeps it")
	// bob's record, under the alias, keeps it down: a start of it too.
	m.Run(ctx, "root", "systemctl", "start", "pc-t-al.service")
	if s := isActive(ctx, "pc-t-al.service"); s != "inactive" {
		t.Errorf("after alice's release, with bob's claim through the alias, pc-t-al.service is %s\n%s", s, out)
	}
	checkInvariant(t, ctx, claimsDir, "pc-t-al.service")
	out, _ = portclaim(t, ctx, "bob", nil, "release", "--all")
	if s := isActive(ctx, "pc-t-al.service"); s != "active" {
		t.Errorf("after both releases pc-t-al.service is %s\n%s", s, out)
	}
	if r := m.Run(ctx, "root", "sh", "-c", "ls "+claimsDir+"/*/pc-t-al* "+claimsDir+"/*/.releasing/pc-t-al* 2>/dev/null"); strings.TrimSpace(r.Stdout) != "" {
		t.Errorf("records left: %s", r.Stdout)
	}
}
