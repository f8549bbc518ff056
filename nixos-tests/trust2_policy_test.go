package e2e

// Trust II: what reconcile believes of the policy.

import (
	"context"
	"strings"
	"testing"

	"github.com/portclaim/portclaim/nixos-tests/fixture"
)

// setPolicy puts content where the policy is, as a switch to a module
// that renders it would (through /etc/static into the store), and runs
// reconcile as that switch does. It returns reconcile's result.
func setPolicy(t *testing.T, ctx context.Context, content string) (string, int) {
	t.Helper()
	files := fixture.Files{}
	for p, f := range installed {
		files[p] = f
	}
	f := files[policyPath]
	f.Content = content
	files[policyPath] = f
	if _, err := fixture.Activate(m, installed, files); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := fixture.Activate(m, files, installed); err != nil {
			t.Error(err)
		}
		m.Run(context.Background(), "root", "systemctl", "restart", "portclaim-reconcile.service")
	})
	r := m.Run(ctx, "root", "systemctl", "restart", "portclaim-reconcile.service")
	return r.Stdout + r.Stderr, r.ExitCode
}

// TestAPolicyThatCannotBeTrustedKeepsEveryClaim: one trailing comma in
// the policy, or a version this binary does not read (a newer module
// beside an older binary), is not a policy that allows nothing: reconcile
// keeps every claim and fails loudly; only a policy that is gone (the
// module turned off) gives them back.
func TestAPolicyThatCannotBeTrustedKeepsEveryClaim(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-t-pol.service", "", true, true, "tcp4:127.0.0.1:7400")
	path := manifest(t, "t-pol", oneService("t-pol", "pc-t-pol.service", "podman-t-pol.service", 7400, ""))
	if out, code := portclaim(t, ctx, "alice", nil, "resolve", "--manifest", path); code != 0 || isActive(ctx, "pc-t-pol.service") != "inactive" {
		t.Fatalf("resolve: exit %d\n%s", code, out)
	}
	good := installed[policyPath].Content
	for _, c := range []struct{ name, policy, says string }{
		{"a trailing comma", strings.TrimSuffix(good, "}") + ",}", "not valid JSON"},
		{"a newer version", strings.Replace(good, `"version":1`, `"version":99`, 1), "version: 99 is not supported"},
	} {
		t.Run(c.name, func(t *testing.T) {
			since := must(t, ctx, "root", "date", "+%Y-%m-%d %H:%M:%S")
			out, code := setPolicy(t, ctx, c.policy)
			if code == 0 {
				t.Errorf("reconcile succeeded with an untrusted policy\n%s", out)
			}
			if s := isActive(ctx, "pc-t-pol.service"); s != "inactive" {
				t.Errorf("pc-t-pol.service is %s: the claim was given back", s)
			}
			if _, ok := readClaim(t, ctx, "pc-t-pol.service"); !ok {
				t.Error("alice's claim is gone")
			}
			journalSays(t, ctx, "reconcile's journal", []string{c.says, "every claim is kept"}, "-u", "portclaim-reconcile.service", "--since", strings.TrimSpace(since))
			status := must(t, ctx, "root", "portclaim", "status")
			contains(t, "root's status", status, "cannot be trusted", c.says, "claim: pc-t-pol.service yields to alice")
			prom := must(t, ctx, "root", "portclaim", "status", "--format", "prometheus")
			contains(t, "the metrics", prom, "portclaim_policy_ok 0", "portclaim_policy_untrusted 1",
				`portclaim_claims{user="alice",unit="pc-t-pol.service",method="condition"} 1`)
			checkInvariant(t, ctx, claimsDir, "pc-t-pol.service")
		})
	}
	// The module turned off: no policy at all. Reconcile gives back.
	t.Run("no policy", func(t *testing.T) {
		must(t, ctx, "root", "rm", policyPath)
		t.Cleanup(func() {
			if _, err := fixture.Activate(m, fixture.Files{}, fixture.Files{policyPath: installed[policyPath]}); err != nil {
				t.Error(err)
			}
		})
		if r := m.Run(ctx, "root", "systemctl", "restart", "portclaim-reconcile.service"); r.ExitCode != 0 {
			t.Errorf("reconcile without a policy: %s", r)
		}
		if s := isActive(ctx, "pc-t-pol.service"); s != "active" {
			t.Errorf("without a policy pc-t-pol.service is %s; want it given back", s)
		}
	})
}
