package moduleeval

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// entries returns portclaim's activation entries' scripts for a home.nix
// body, with the package's store path replaced by dir (where the test puts
// a fake portclaim).
func entries(t *testing.T, dir, body string) map[string]string {
	t.Helper()
	var r map[string]string
	err := Eval(context.Background(), fmt.Sprintf(`let
  fake = (e.pkgsFor { }).portclaim // { outPath = %s; };
  h = e.home { modules = [ { services.portclaim.package = lib.mkForce fake; } %s ]; };
  a = h.config.home.activation;
in builtins.mapAttrs (_: v: v.data) (lib.filterAttrs (n: _: lib.hasPrefix "portclaim" n) a)`, NixString(dir), body), &r)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type run struct {
	out, calls string
	code       int
}

// runEntry runs one entry as home-manager's activation script runs it:
// bash, set -eu and pipefail, home-manager's helper functions sourced, in
// the environment env; then a marker, to see whether the script went on.
func runEntry(t *testing.T, dir, script string, env ...string) run {
	t.Helper()
	src, _ := Sources()
	full := "set -eu\nset -o pipefail\nsource " + filepath.Join(src.HomeManager, "lib", "bash", "home-manager.sh") + "\n" + script + "\necho SWITCH-GOES-ON\n"
	cmd := exec.Command("bash", "-c", full)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "NO_COLOR=1", "CALLS=" + filepath.Join(dir, "calls")}, env...)
	out, err := cmd.CombinedOutput()
	r := run{out: string(out)}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	calls, _ := os.ReadFile(filepath.Join(dir, "calls"))
	os.Remove(filepath.Join(dir, "calls"))
	r.calls = strings.TrimSpace(string(calls))
	return r
}

// fakePortclaim writes dir/bin/portclaim: it records its arguments and
// exits with $FAKE_EXIT.
func fakePortclaim(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
	err := os.WriteFile(filepath.Join(dir, "bin", "portclaim"), []byte("#!/bin/sh\necho \"$*\" >> \"$CALLS\"\nexit \"${FAKE_EXIT:-0}\"\n"), 0o755)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestActivationScripts runs the entries the way a switch does, with a
// fake portclaim, across DRY_RUN, VERBOSE, exit codes and strict.
func TestActivationScripts(t *testing.T) {
	need(t)
	dir := fakePortclaim(t)
	on := entries(t, dir, `{ services.portclaim.enable = true; }`)
	strict := entries(t, dir, `{ services.portclaim.enable = true; services.portclaim.strict = true; }`)
	for _, name := range []string{"portclaim", "portclaimRelease"} {
		if on[name] == "" {
			t.Fatalf("no activation entry %s: %v", name, on)
		}
	}
	resolve, release := on["portclaim"], on["portclaimRelease"]
	manifest := func(args string) bool { return strings.Contains(args, "--manifest /nix/store/") }

	t.Run("quiet when portclaim is", func(t *testing.T) {
		r := runEntry(t, dir, resolve)
		if r.code != 0 || r.out != "SWITCH-GOES-ON\n" || !strings.HasPrefix(r.calls, "resolve --switch --manifest ") || !manifest(r.calls) || strings.Contains(r.calls, "--dry-run") || strings.Contains(r.calls, "--verbose") {
			t.Errorf("exit %d, output %q, called %q", r.code, r.out, r.calls)
		}
		r = runEntry(t, dir, release)
		if r.code != 0 || !strings.HasPrefix(r.calls, "release --switch --manifest ") {
			t.Errorf("release: exit %d, called %q", r.code, r.calls)
		}
	})
	// home-manager's run tests [[ -v DRY_RUN ]]: set, even empty, is a dry run.
	for _, v := range []string{"DRY_RUN=1", "DRY_RUN="} {
		t.Run(v, func(t *testing.T) {
			r := runEntry(t, dir, resolve, v)
			if !strings.HasSuffix(r.calls, " --dry-run") {
				t.Errorf("%s: called %q, want --dry-run", v, r.calls)
			}
		})
	}
	t.Run("no DRY_RUN", func(t *testing.T) {
		if r := runEntry(t, dir, resolve); strings.Contains(r.calls, "--dry-run") {
			t.Errorf("called %q", r.calls)
		}
	})
	t.Run("VERBOSE", func(t *testing.T) {
		if r := runEntry(t, dir, release, "VERBOSE=1", "DRY_RUN=1"); !strings.HasSuffix(r.calls, " --dry-run --verbose") {
			t.Errorf("called %q", r.calls)
		}
	})
	for _, code := range []string{"1", "2", "3", "127"} {
		t.Run("exit "+code+" never fails the switch", func(t *testing.T) {
			r := runEntry(t, dir, resolve, "FAKE_EXIT="+code)
			if r.code != 0 || !strings.Contains(r.out, "portclaim resolve failed (exit "+code+"); the switch goes on") || !strings.Contains(r.out, "SWITCH-GOES-ON") {
				t.Errorf("exit %d, output %q", r.code, r.out)
			}
		})
	}
	t.Run("strict stops the switch", func(t *testing.T) {
		for _, name := range []string{"portclaim", "portclaimRelease"} {
			r := runEntry(t, dir, strict[name], "FAKE_EXIT=1")
			if r.code == 0 || strings.Contains(r.out, "SWITCH-GOES-ON") || !strings.Contains(r.out, "failed (exit 1; strict = true stops the switch)") {
				t.Errorf("%s: exit %d, output %q", name, r.code, r.out)
			}
			if r := runEntry(t, dir, strict[name]); r.code != 0 || !strings.Contains(r.out, "SWITCH-GOES-ON") {
				t.Errorf("%s, strict, portclaim fine: exit %d, output %q", name, r.code, r.out)
			}
		}
	})
}

// TestTurnedOffActivationReleasesAll (issue 3): with the module imported
// and portclaim off, the entry gives everything back when a policy exists,
// changes nothing without one, and never fails the switch.
func TestTurnedOffActivationReleasesAll(t *testing.T) {
	need(t)
	dir := fakePortclaim(t)
	off := entries(t, dir, `{ services.portclaim.enable = false; }`)
	if _, ok := off["portclaim"]; ok {
		t.Errorf("resolve runs with portclaim off")
	}
	script := off["portclaimRelease"]
	if !strings.Contains(script, "/etc/portclaim/policy.json") {
		t.Fatalf("the entry does not look for the policy:\n%s", script)
	}
	policy := filepath.Join(t.TempDir(), "policy.json")
	script = strings.ReplaceAll(script, "/etc/portclaim/policy.json", policy)

	if r := runEntry(t, dir, script); r.code != 0 || r.calls != "" {
		t.Errorf("without a policy: exit %d, called %q", r.code, r.calls)
	}
	os.WriteFile(policy, []byte("{}"), 0o644)
	if r := runEntry(t, dir, script); r.code != 0 || r.calls != "release --all" {
		t.Errorf("with a policy: exit %d, called %q, want release --all", r.code, r.calls)
	}
	if r := runEntry(t, dir, script, "DRY_RUN=", "VERBOSE=1"); r.calls != "release --all --dry-run --verbose" {
		t.Errorf("dry run: called %q", r.calls)
	}
	if r := runEntry(t, dir, script, "FAKE_EXIT=1"); r.code != 0 || !strings.Contains(r.out, "SWITCH-GOES-ON") || !strings.Contains(r.out, "portclaim release --all failed (exit 1)") {
		t.Errorf("release --all failing: exit %d, output %q", r.code, r.out)
	}
}
