package moduleeval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// withAlice is a NixOS configuration in which the system enables ollama
// (on 127.0.0.1:11434 unless extra says otherwise), lets nothing yield, and
// alice's home.nix runs an ollama container publishing ports.
func withAlice(ports, extraSystem, extraHome string) string {
	return fmt.Sprintf(`{
  services.ollama.enable = true;
  services.portclaim.enable = true;
  %s
  home-manager.users.alice = %s;
}`, extraSystem, hmUser(fmt.Sprintf(`
  services.podman.enable = true;
  services.podman.containers.local-ai-ollama = { image = "ollama"; ports = %s; };
  services.portclaim.enable = true;
  %s`, ports, extraHome)))
}

// Issue 1: the collision check compares real bind overlap, as the kernel
// does, with what the system's ollama module says it binds.
func TestCollisionsAreRealBindOverlaps(t *testing.T) {
	need(t)
	cases := []struct {
		name, ports, system string
		warns               bool
	}{
		{"same port, all addresses", `[ "11434:11434" ]`, ``, true},
		{"moved to another host port", `[ "11435:11434" ]`, ``, false},
		{"another loopback address", `[ "127.0.0.2:11434:11434" ]`, ``, false},
		{"the same loopback address", `[ "127.0.0.1:11434:11434" ]`, ``, true},
		{"dual-stack :: covers IPv4", `[ "[::]:11434:11434" ]`, ``, true},
		{"::1 against an IPv4 service", `[ "[::1]:11434:11434" ]`, ``, false},
		{"the system on every IPv4 address", `[ "127.0.0.2:11434:11434" ]`, `services.ollama.host = "0.0.0.0";`, true},
		{"the system moved to another port", `[ "11434:11434" ]`, `services.ollama.port = 11500;`, false},
		{"udp never collides with tcp", `[ "11434:11434/udp" ]`, ``, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := mustNixOS(t, withAlice(c.ports, c.system, ""))
			warned := false
			for _, w := range r.Checks.Warnings {
				if strings.Contains(w, "the system enables ollama.service") {
					warned = true
					if !strings.HasPrefix(w, "alice profile: portclaim: ") || !strings.Contains(w, `services.portclaim.yield."ollama.service".users = [ "alice" ];`) ||
						!strings.HasSuffix(w, "or turn it off: services.ollama.enable = false;") {
						t.Errorf("warning %q does not name alice and the fixes", w)
					}
				}
			}
			if warned != c.warns {
				t.Errorf("ports %s with the system's ollama (%s): warned = %v, want %v; warnings %q", c.ports, c.system, warned, c.warns, r.Checks.Warnings)
			}
		})
	}
}

// A unit the known-services table does not know gets no "turn it off"
// line: services.<its name>.enable may not exist.
func TestCollisionNamesOnlyOptionsThatExist(t *testing.T) {
	need(t)
	r := mustNixOS(t, fmt.Sprintf(`{
  services.portclaim.enable = true;
  systemd.services.webapp = { wantedBy = [ "multi-user.target" ]; serviceConfig.ExecStart = "/bin/true"; };
  home-manager.users.alice = %s;
}`, hmUser(`
  services.portclaim.enable = true;
  services.portclaim.services.webapp = { systemUnits = [ "webapp.service" ]; userUnits = [ "podman-webapp.service" ]; ports = [ { port = 8088; } ]; };`)))
	var got []string
	for _, w := range r.Checks.Warnings {
		if strings.Contains(w, "the system enables webapp.service") {
			got = append(got, w)
		}
	}
	if len(got) != 1 || !strings.HasSuffix(got[0], `services.portclaim.yield."webapp.service".users = [ "alice" ];`) {
		t.Errorf("want one warning ending with the yield line and no guessed option; warnings %q", r.Checks.Warnings)
	}
}

// Issue 1, strict: a false collision must not fail the system build; a
// real one must.
func TestStrictFailsTheBuildOnlyOnRealCollisions(t *testing.T) {
	need(t)
	r := mustNixOS(t, withAlice(`[ "11435:11434" ]`, ``, `services.portclaim.strict = true;`))
	if len(r.Checks.FailedAssertions) != 0 {
		t.Errorf("strict, no overlap: failed assertions %q", r.Checks.FailedAssertions)
	}
	r = mustNixOS(t, withAlice(`[ "11434:11434" ]`, ``, `services.portclaim.strict = true;`))
	if len(r.Checks.FailedAssertions) != 1 || !strings.Contains(r.Checks.FailedAssertions[0], "alice profile: portclaim: ") {
		t.Errorf("strict, a real collision: failed assertions %q, want one naming alice", r.Checks.FailedAssertions)
	}
	// Letting it yield settles it.
	r = mustNixOS(t, withAlice(`[ "11434:11434" ]`, `services.portclaim.yield."ollama.service".users = [ "alice" ];`, `services.portclaim.strict = true;`))
	if len(r.Checks.FailedAssertions)+len(r.Checks.Warnings) != 0 {
		t.Errorf("strict, yielding to alice: %q %q", r.Checks.FailedAssertions, r.Checks.Warnings)
	}
}

// Issue 2: a yield entry for a unit the system does not define (a typo, or
// ollama without services.ollama) defines no unit, says so, and does not
// make other users' claims collide with a unit that does not run.
func TestYieldOfAnUndefinedUnitDefinesNoUnit(t *testing.T) {
	need(t)
	r := mustNixOS(t, `{
  services.portclaim.enable = true;
  services.portclaim.yield."olama.service".users = [ "alice" ];
  services.portclaim.yield."ollama.service".users = [ "alice" ];
  home-manager.users.bob = `+hmUser(`
    services.podman.enable = true;
    services.podman.containers.local-ai-ollama = { image = "ollama"; ports = [ "11434:11434" ]; };
    services.portclaim.enable = true;`)+`;
}`)
	for _, s := range r.Services {
		if s == "olama" || s == "ollama" {
			t.Errorf("yield defined systemd.services.%s, a unit without ExecStart", s)
		}
	}
	for _, unit := range []string{"olama.service", "ollama.service"} {
		found := false
		for _, w := range r.Checks.Warnings {
			if strings.Contains(w, `services.portclaim.yield."`+unit+`"`) && strings.Contains(w, "does not define") {
				found = true
			}
		}
		if !found {
			t.Errorf("no warning that %s is not a unit the system defines: %q", unit, r.Checks.Warnings)
		}
	}
	for _, w := range r.Checks.Warnings {
		if strings.Contains(w, "bob profile") {
			t.Errorf("bob warned about a unit the system does not run: %q", w)
		}
	}
	// The start condition is still installed, as a drop-in only.
	if _, ok := r.Installed["/etc/systemd/system/olama.service.d/portclaim-olama.service.conf"]; !ok {
		t.Error("no drop-in for olama.service")
	}
}

// Issue 3: with portclaim off in home.nix (the module still imported),
// the switch still gives back what was claimed: an activation entry after
// reloadSystemd runs release --all when a policy exists.
func TestTurnedOffReleasesOnTheSwitch(t *testing.T) {
	need(t)
	r := mustNixOS(t, `{
  services.ollama.enable = true;
  services.portclaim.enable = true;
  services.portclaim.yield."ollama.service".users = [ "alice" ];
  home-manager.users.alice = `+hmUser(`services.portclaim.enable = false;`)+`;
}`)
	order := r.Users["alice"].ActivationOrder
	release, reload := -1, -1
	for i, n := range order {
		switch n {
		case "portclaimRelease":
			release = i
		case "reloadSystemd":
			reload = i
		case "portclaim":
			t.Errorf("resolve runs with portclaim turned off: %v", order)
		}
	}
	if release < 0 || release < reload {
		t.Errorf("activation order %v: want portclaimRelease after reloadSystemd", order)
	}
	// The script itself is run in TestActivationScripts.
}

// Issue 3, the system side: removing a user from the policy changes
// portclaim-reconcile.service, so nixos-rebuild switch runs it again and
// the user's claims go back on that switch.
func TestPolicyChangeRerunsReconcile(t *testing.T) {
	need(t)
	a := mustNixOS(t, `{ services.portclaim.enable = true; services.portclaim.yield."ollama.service".users = [ "alice" "bob" ]; }`)
	b := mustNixOS(t, `{ services.portclaim.enable = true; services.portclaim.yield."ollama.service".users = [ "alice" ]; }`)
	unit := "/etc/systemd/system/portclaim-reconcile.service"
	if string(a.Installed[unit]) == string(b.Installed[unit]) {
		t.Errorf("portclaim-reconcile.service is the same for two policies: a switch would not run it")
	}
	if !strings.Contains(string(a.Installed[unit]), "RemainAfterExit=yes") {
		t.Errorf("portclaim-reconcile.service does not remain active: switch-to-configuration would not restart it")
	}
}

// Issue 4: names the Go policy reader refuses fail evaluation, naming the
// option.
func TestBadNamesFailEvaluationWithTheOptionPath(t *testing.T) {
	need(t)
	cases := []struct{ config, path string }{
		{`{ services.portclaim.enable = true; services.portclaim.yield."ollama.service".users = [ "alice smith" ]; }`, `services.portclaim.yield."ollama.service".users`},
		{`{ services.portclaim.enable = true; services.portclaim.yield."ollama.service".users = [ "1000" ]; }`, `services.portclaim.yield."ollama.service".users`},
		{`{ services.portclaim.enable = true; services.portclaim.yield."a/b.service".users = [ "alice" ]; }`, `services.portclaim.yield."a/b.service"`},
		{`{ services.portclaim.enable = true; services.portclaim.yield."web@.service".users = [ "alice" ]; }`, `services.portclaim.yield."web@.service"`},
		{`{ services.portclaim.enable = true; services.portclaim.yield."multi-user.target".users = [ "alice" ]; }`, `services.portclaim.yield."multi-user.target"`},
		{`{ services.portclaim.enable = true; services.portclaim.claimsDir = "/var/lib/../lib/portclaim"; }`, `services.portclaim.claimsDir`},
		{`{ services.portclaim.enable = true; services.portclaim.claimsDir = "var/lib/portclaim"; }`, `services.portclaim.claimsDir`},
	}
	for _, c := range cases {
		_, err := evalNixOS(t, c.config)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%s evaluates (%v)", c.config, err)
			continue
		}
		if !strings.Contains(e.Stderr, "The option `"+c.path) {
			t.Errorf("%s: the error does not name %s:\n%s", c.config, c.path, e.Stderr)
		}
	}
}

// Issue 4: a user the system does not have gets a warning.
func TestYieldToAnUnknownUserWarns(t *testing.T) {
	need(t)
	r := mustNixOS(t, `{ services.ollama.enable = true; services.portclaim.enable = true; services.portclaim.yield."ollama.service".users = [ "alice" "carol" ]; }`)
	n := 0
	for _, w := range r.Checks.Warnings {
		if strings.Contains(w, "carol, who is not in users.users") {
			n++
		}
		if strings.Contains(w, "alice,") {
			t.Errorf("warns about alice, who exists: %q", w)
		}
	}
	if n != 1 {
		t.Errorf("warnings %q: want one about carol", r.Checks.Warnings)
	}
}

// Issue 7: the modules carry their file and a key, so importing one twice
// is harmless and options name their declaring file.
func TestModulesImportTwiceAndNameTheirFile(t *testing.T) {
	need(t)
	var r struct {
		Declarations []string `json:"declarations"`
		HMDecls      []string `json:"hmDecls"`
		Enabled      bool     `json:"enabled"`
	}
	err := Eval(context.Background(), `let
  n = e.nixos { modules = [ e.portclaim.nixos e.portclaim.nixos { services.portclaim.enable = true; } ]; };
  h = e.home { modules = [ e.portclaim.homeManager ]; };
in {
  declarations = map toString n.options.services.portclaim.enable.declarations;
  hmDecls = map toString h.options.services.portclaim.enable.declarations;
  enabled = n.config.services.portclaim.enable;
}`, &r)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Declarations) != 1 || !strings.HasSuffix(r.Declarations[0], "/nix/nixos.nix") {
		t.Errorf("services.portclaim.enable declared in %q, want once, in nix/nixos.nix", r.Declarations)
	}
	if len(r.HMDecls) != 1 || !strings.HasSuffix(r.HMDecls[0], "/nix/home-manager.nix") {
		t.Errorf("home-manager's services.portclaim.enable declared in %q, want once, in nix/home-manager.nix", r.HMDecls)
	}
	if !r.Enabled {
		t.Error("imported twice, the module no longer takes services.portclaim.enable = true")
	}
}

// Issue 8: duplicate users render once; yieldKnownServices grants each
// user only the known services their home-manager configuration claims.
func TestPolicyDetails(t *testing.T) {
	need(t)
	r := mustNixOS(t, `{ services.portclaim.enable = true; services.portclaim.yield."ollama.service".users = [ "alice" "alice" ]; }`,
		`{ services.portclaim.yield."ollama.service".users = [ "alice" ]; }`)
	if want := `{"claimsDir":"/var/lib/portclaim/claims","version":1,"yield":[{"unit":"ollama.service","users":["alice"]}]}`; r.Policy != want {
		t.Errorf("policy %s, want %s", r.Policy, want)
	}

	r = mustNixOS(t, `{
  services.ollama.enable = true;
  services.qdrant.enable = true;
  services.portclaim.enable = true;
  services.portclaim.yieldKnownServices = true;
  home-manager.users.alice = `+hmUser(`
    services.podman.enable = true;
    services.podman.containers.local-ai-ollama = { image = "ollama"; ports = [ "11434:11434" ]; };
    services.portclaim.enable = true;`)+`;
  home-manager.users.bob = `+hmUser(`
    services.podman.enable = true;
    services.podman.containers.local-ai-qdrant = { image = "qdrant"; ports = [ "6333:6333" ]; };
    services.portclaim.enable = true;`)+`;
}`)
	if want := `{"claimsDir":"/var/lib/portclaim/claims","version":1,"yield":[{"unit":"ollama.service","users":["alice"]},{"unit":"qdrant.service","users":["bob"]}]}`; r.Policy != want {
		t.Errorf("yieldKnownServices: policy %s, want %s", r.Policy, want)
	}
	if len(r.Checks.Warnings) != 0 {
		t.Errorf("yieldKnownServices: warnings %q", r.Checks.Warnings)
	}
}

// Issue 8: a container on the host's network publishes no ports: nothing
// is claimed for it, and the manifest's notes say so.
func TestHostNetworkContainersClaimNothing(t *testing.T) {
	need(t)
	var r struct {
		Manifest string `json:"manifest"`
	}
	err := Eval(context.Background(), `let h = e.home { modules = [ {
  services.podman.enable = true;
  services.podman.containers.web = { image = "web"; ports = [ "8080:80" ]; network = "host"; };
  services.podman.containers.local-ai-ollama = { image = "ollama"; ports = [ "11434:11434" ]; };
  services.portclaim.enable = true;
} ]; }; in { manifest = h.config.services.portclaim.manifest.text; }`, &r)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Services []struct {
			UserUnits []string `json:"userUnits"`
		} `json:"services"`
		Notes []string `json:"notes"`
	}
	if err := json.Unmarshal([]byte(r.Manifest), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Services) != 1 || m.Services[0].UserUnits[0] != "podman-local-ai-ollama.service" {
		t.Errorf("manifest %s: want ollama's claim and none for the host-network container", r.Manifest)
	}
	if len(m.Notes) != 1 || !strings.Contains(m.Notes[0], "container web uses the host's network") {
		t.Errorf("notes %q: want one about the host-network container", m.Notes)
	}
}
