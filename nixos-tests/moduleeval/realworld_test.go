package moduleeval

// The modules against the real world: nixpkgs' own ollama and open-webui
// modules, home-manager's podman module as users write it, root's
// home-manager, and names NixOS itself takes or refuses.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// warningsAbout returns the warnings (or failed assertions) that contain s.
func warningsAbout(ws []string, s string) []string {
	var out []string
	for _, w := range ws {
		if strings.Contains(w, s) {
			out = append(out, w)
		}
	}
	return out
}

// policyYield decodes the rendered policy into unit -> users.
func policyYield(t *testing.T, r nixosResult) map[string][]string {
	t.Helper()
	var p struct {
		Yield []struct {
			Unit  string   `json:"unit"`
			Users []string `json:"users"`
		} `json:"yield"`
	}
	if err := json.Unmarshal([]byte(r.Policy), &p); err != nil {
		t.Fatalf("policy %q: %v", r.Policy, err)
	}
	out := map[string][]string{}
	for _, y := range p.Yield {
		out[y.Unit] = y.Users
	}
	return out
}

type manifestDoc struct {
	Services []struct {
		Name        string   `json:"name"`
		SystemUnits []string `json:"systemUnits"`
		UserUnits   []string `json:"userUnits"`
		Ports       []struct {
			Port     int    `json:"port"`
			Protocol string `json:"protocol"`
			Address  string `json:"address"`
		} `json:"ports"`
	} `json:"services"`
	Notes []string `json:"notes"`
}

// aliceOllamaContainer is alice's home.nix running ollama in a container
// on the system ollama's port.
var aliceOllamaContainer = hmUser(`
    services.podman.enable = true;
    services.podman.containers.local-ai-ollama = { image = "ollama"; ports = [ "11434:11434" ]; };
    services.portclaim.enable = true;`)

// Issue 16: services.ollama.loadModels makes nixpkgs' ollama module define
// ollama-model-loader.service, which BindsTo= ollama.service: the family
// yields together, to the users ollama yields to, by yieldKnownServices or
// by hand, and only where the system defines it.
func TestTheOllamaFamilyYieldsTogether(t *testing.T) {
	need(t)
	for name, c := range map[string]struct{ system, want string }{
		"yieldKnownServices": {`services.portclaim.yieldKnownServices = true; home-manager.users.alice = ` + aliceOllamaContainer + `;`, "alice"},
		"by hand":            {`services.portclaim.yield."ollama.service".users = [ "alice" "bob" ];`, "alice bob"},
	} {
		t.Run(name, func(t *testing.T) {
			r := mustNixOS(t, `{ services.ollama.enable = true; services.ollama.loadModels = [ "gemma3" ]; services.portclaim.enable = true; `+c.system+` }`)
			y := policyYield(t, r)
			if strings.Join(y["ollama.service"], " ") != c.want || strings.Join(y["ollama-model-loader.service"], " ") != c.want {
				t.Errorf("policy %s: want ollama.service and ollama-model-loader.service to yield to %s", r.Policy, c.want)
			}
			dropIn := string(r.Installed["/etc/systemd/system/ollama-model-loader.service.d/portclaim-ollama-model-loader.service.conf"])
			if !strings.Contains(dropIn, `ConditionPathExists=!/var/lib/portclaim/claims/alice/ollama-model-loader.service`) {
				t.Errorf("the loader's start condition: %s", dropIn)
			}
			if len(r.Checks.Warnings)+len(r.Checks.FailedAssertions) != 0 {
				t.Errorf("warnings %q, assertions %q", r.Checks.Warnings, r.Checks.FailedAssertions)
			}
		})
	}
	// Without loadModels the module defines no loader: nothing to let yield.
	r := mustNixOS(t, `{ services.ollama.enable = true; services.portclaim.enable = true; services.portclaim.yield."ollama.service".users = [ "alice" ]; }`)
	if y := policyYield(t, r); len(y) != 1 {
		t.Errorf("without loadModels: policy %s, want ollama.service alone", r.Policy)
	}
}

// The known-services table's family of each service is exactly the units
// its NixOS module defines besides the ones holding the port, with every
// option that adds a unit turned on.
func TestTheFamilyIsWhatTheModuleDefines(t *testing.T) {
	need(t)
	var r map[string]struct {
		Defined []string `json:"defined"`
		Known   struct {
			SystemUnits []string `json:"systemUnits"`
			Family      []string `json:"family"`
		} `json:"known"`
	}
	err := Eval(context.Background(), `let
  known = e.portclaim.lib.knownServices;
  defined = m: map (n: n + ".service") (builtins.attrNames (e.nixos { modules = [ m ]; }).config.systemd.services);
in {
  ollama = { defined = defined { services.ollama = { enable = true; loadModels = [ "gemma3" ]; syncModels = true; }; }; known = known.ollama; };
  open-webui = { defined = defined { services.open-webui.enable = true; }; known = known.open-webui; };
}`, &r)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range r {
		want := slices.Concat(s.Known.SystemUnits, s.Known.Family)
		slices.Sort(want)
		slices.Sort(s.Defined)
		if !slices.Equal(s.Defined, want) {
			t.Errorf("%s: the NixOS module defines %v; the table says %v and the family %v", name, s.Defined, s.Known.SystemUnits, s.Known.Family)
		}
	}
}

// Issue 16: a known service without a NixOS module (mindsdb), defined by
// hand, must not stop the evaluation; the warning names no option.
func TestACollisionWithAServiceWithoutAModule(t *testing.T) {
	need(t)
	r := mustNixOS(t, `{
  services.portclaim.enable = true;
  systemd.services.mindsdb = { wantedBy = [ "multi-user.target" ]; serviceConfig.ExecStart = "/bin/mindsdb"; };
  home-manager.users.alice = `+hmUser(`
    services.podman.enable = true;
    services.podman.containers.local-ai-mindsdb = { image = "mindsdb"; ports = [ "47334:47334" ]; };
    services.portclaim.enable = true;`)+`;
}`)
	ws := warningsAbout(r.Checks.Warnings, "the system enables mindsdb.service")
	if len(ws) != 1 || !strings.Contains(ws[0], `services.portclaim.yield."mindsdb.service".users = [ "alice" ];`) || strings.Contains(ws[0], ".enable = false") {
		t.Errorf("warnings %q: want one, with the yield line and no option to turn it off", r.Checks.Warnings)
	}
}

// Issue 16: nixpkgs' open-webui listens on 8080 (127.0.0.1 by default);
// a hand-written open-webui.service is taken to hold the table's port.
func TestOpenWebuiIsOn8080(t *testing.T) {
	need(t)
	webui := func(system, ports string) []string {
		r := mustNixOS(t, `{ services.portclaim.enable = true; `+system+`
  home-manager.users.alice = `+hmUser(`
    services.podman.enable = true;
    services.podman.containers.local-ai-open-webui = { image = "open-webui"; ports = [ `+ports+` ]; };
    services.portclaim.enable = true;`)+`; }`)
		return warningsAbout(r.Checks.Warnings, "the system enables open-webui.service")
	}
	byHand := `systemd.services.open-webui = { wantedBy = [ "multi-user.target" ]; serviceConfig.ExecStart = "/bin/open-webui"; };`
	for _, c := range []struct {
		what, system, ports string
		warns               bool
	}{
		{"nixpkgs' module, alice on 8080", `services.open-webui.enable = true;`, `"8080:8080"`, true},
		{"nixpkgs' module, alice on 3001", `services.open-webui.enable = true;`, `"3001:8080"`, false},
		{"by hand, alice on 8080", byHand, `"8080:8080"`, true},
		{"by hand, alice on 3001", byHand, `"3001:8080"`, false},
	} {
		if got := webui(c.system, c.ports); (len(got) == 1) != c.warns {
			t.Errorf("%s: warnings %q, want a warning: %v", c.what, got, c.warns)
		}
	}
}

// Issue 16: the advice names only what would change something: no
// "services.ollama.enable = false" for a unit written by hand.
func TestNoTurnOffAdviceForAHandWrittenUnit(t *testing.T) {
	need(t)
	r := mustNixOS(t, `{
  services.portclaim.enable = true;
  systemd.services.ollama = { wantedBy = [ "multi-user.target" ]; serviceConfig.ExecStart = "/bin/ollama serve"; };
  home-manager.users.alice = `+aliceOllamaContainer+`;
}`)
	ws := warningsAbout(r.Checks.Warnings, "the system enables ollama.service")
	if len(ws) != 1 || strings.Contains(ws[0], "services.ollama.enable") {
		t.Errorf("warnings %q: want one, without services.ollama.enable (it is false already)", r.Checks.Warnings)
	}
}

// Issue 16: without portclaim's NixOS module nothing can yield: the
// warning does not name services.portclaim options the system does not
// have, but says what to import; with the module off, it says to turn it on.
func TestCollisionAdviceFollowsTheNixOSModule(t *testing.T) {
	need(t)
	var r struct {
		Absent []string `json:"absent"`
		Off    []string `json:"off"`
	}
	err := Eval(context.Background(), `let
  w = withPortclaim: extra: (e.nixos { inherit withPortclaim; modules = [ `+base+` {
    services.ollama.enable = true;
    home-manager.users.alice = `+aliceOllamaContainer+`;
  } extra ]; }).config.warnings;
in { absent = w false { }; off = w true { services.portclaim.enable = false; }; }`, &r)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Absent) != 1 || strings.Contains(r.Absent[0], "services.portclaim.") || !strings.Contains(r.Absent[0], "nixosModules.default") ||
		!strings.Contains(r.Absent[0], "services.ollama.enable = false;") {
		t.Errorf("without portclaim's NixOS module: %q", r.Absent)
	}
	if len(r.Off) != 1 || !strings.Contains(r.Off[0], `services.portclaim.enable = true; services.portclaim.yield."ollama.service".users = [ "alice" ];`) {
		t.Errorf("with portclaim's NixOS module off: %q", r.Off)
	}
}

// Issue 16: under strategy = "disable-user" the system's service wins:
// the advice is what to turn off in home.nix, not to let it yield.
func TestDisableUserAdviceIsForHomeNix(t *testing.T) {
	need(t)
	for name, c := range map[string]struct{ home, want string }{
		"a container":           {`services.podman.enable = true; services.podman.containers.local-ai-ollama = { image = "o"; ports = [ "11434:11434" ]; };`, "remove services.podman.containers.local-ai-ollama from home.nix"},
		"home-manager's ollama": {`services.ollama.enable = true;`, "in home.nix: services.ollama.enable = false;"},
		"a claim by hand":       {`services.portclaim.services.llm = { systemUnits = [ "ollama.service" ]; userUnits = [ "llm.service" ]; ports = [ { port = 11434; } ]; };`, "turn llm.service off where your home.nix declares it"},
	} {
		t.Run(name, func(t *testing.T) {
			r := mustNixOS(t, `{ services.ollama.enable = true; services.portclaim.enable = true;
  home-manager.users.alice = `+hmUser(c.home+` services.portclaim.enable = true; services.portclaim.strategy = "disable-user";`)+`; }`)
			ws := warningsAbout(r.Checks.Warnings, "ollama.service")
			if len(ws) != 1 || strings.Contains(ws[0], "yield") || !strings.Contains(ws[0], `strategy = "disable-user"`) || !strings.Contains(ws[0], c.want) {
				t.Errorf("warnings %q: want one saying %q, not to let it yield", r.Checks.Warnings, c.want)
			}
		})
	}
}

// A claim's address that the manifest would refuse fails evaluation,
// naming the option, not the build.
func TestABadAddressFailsEvaluation(t *testing.T) {
	need(t)
	for _, a := range []string{"localhost", "::1%eth0", "127.0.0.01"} {
		var out string
		err := Eval(context.Background(), `(e.home { modules = [ { services.portclaim.enable = true; services.portclaim.services.x = { userUnits = [ "x.service" ]; ports = [ { port = 1; address = `+NixString(a)+`; } ]; }; } ]; }).config.services.portclaim.manifest.text`, &out)
		var e *Error
		if !errors.As(err, &e) || !strings.Contains(e.Stderr, "services.portclaim.services.x.ports") || !strings.Contains(e.Stderr, "is not an IP address") {
			t.Errorf("address %q: %v", a, err)
		}
	}
}

// homeManifest renders a standalone home.nix body's manifest.
func homeManifest(t *testing.T, body string) (manifestDoc, string) {
	t.Helper()
	var text string
	if err := Eval(context.Background(), `(e.home { modules = [ { services.portclaim.enable = true; } `+body+` ]; }).config.services.portclaim.manifest.text`, &text); err != nil {
		t.Fatal(err)
	}
	var m manifestDoc
	if err := json.Unmarshal([]byte(text), &m); err != nil {
		t.Fatal(err)
	}
	return m, text
}

// validate runs `portclaim validate` on a manifest, as the build's
// checkPhase does.
func validate(t *testing.T, text string) error {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "portclaim")
	build := exec.Command("go", "build", "-o", bin, "./cmd/portclaim")
	build.Dir = RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building portclaim: %v\n%s", err, out)
	}
	path := filepath.Join(dir, "manifest.json")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "validate", path).CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// Issue 16: publishing a port on 0.0.0.0 and [::] (both stacks) is one
// claim, which `portclaim validate` takes: the build does not fail.
func TestBothStacksPublishedAreOneClaim(t *testing.T) {
	need(t)
	m, text := homeManifest(t, `{ services.podman.enable = true; services.podman.containers.web = { image = "w"; ports = [ "0.0.0.0:8080:80" "[::]:8080:80" "127.0.0.1:9090:90" "9090:90" ]; }; }`)
	if err := validate(t, text); err != nil {
		t.Fatalf("the build would fail: %v\n%s", err, text)
	}
	var got []string
	for _, p := range m.Services[0].Ports {
		got = append(got, fmt.Sprintf("[%s]:%d", p.Address, p.Port))
	}
	if strings.Join(got, " ") != "[::]:8080 []:9090" {
		t.Errorf("claims %v, want [::]:8080 (both stacks) and []:9090 (every address)", got)
	}
}

// Claims two services make on one port cannot both be had: evaluation
// fails, naming both, rather than the build.
func TestOnePortClaimedTwiceFailsEvaluation(t *testing.T) {
	need(t)
	r := mustNixOS(t, `{ services.portclaim.enable = true;
  home-manager.users.alice = `+hmUser(`
    services.podman.enable = true;
    services.podman.containers.a = { image = "a"; ports = [ "8080:80" ]; };
    services.podman.containers.b = { image = "b"; ports = [ "127.0.0.1:8080:80" ]; };
    services.portclaim.enable = true;`)+`; }`)
	fa := warningsAbout(r.Checks.FailedAssertions, "8080/tcp")
	if len(fa) != 1 || !strings.Contains(fa[0], `"a"`) || !strings.Contains(fa[0], `"b"`) {
		t.Errorf("failed assertions %q: want one naming both claims of 8080/tcp", r.Checks.FailedAssertions)
	}
}

// Issue 16: an entry with no ports drops a derived claim; an entry with
// ports alone keeps the derived claim's units.
func TestADerivedClaimCanBeDroppedOrChanged(t *testing.T) {
	need(t)
	containers := `services.podman.enable = true;
    services.podman.containers.local-ai-ollama = { image = "o"; ports = [ "11434:11434" ]; };
    services.podman.containers.local-ai-qdrant = { image = "q"; ports = [ "6333:6333" ]; };`
	m, text := homeManifest(t, `{ `+containers+` services.portclaim.services.ollama.ports = [ ]; }`)
	if err := validate(t, text); err != nil {
		t.Fatalf("the build would fail: %v\n%s", err, text)
	}
	if len(m.Services) != 1 || m.Services[0].Name != "qdrant" {
		t.Errorf("ollama's claim dropped: manifest %s", text)
	}
	m, text = homeManifest(t, `{ `+containers+` services.portclaim.services.qdrant.ports = [ { port = 6334; } ]; }`)
	q := m.Services[1]
	if q.Name != "qdrant" || strings.Join(q.UserUnits, " ") != "podman-local-ai-qdrant.service" || strings.Join(q.SystemUnits, " ") != "qdrant.service" || q.Ports[0].Port != 6334 {
		t.Errorf("qdrant's claim changed to 6334 should keep its units: %s", text)
	}
}

// Issue 16: a container on no network (network = "none") publishes
// nothing, as on the host's: nothing is claimed, and the notes say why.
func TestContainersWithoutANetworkClaimNothing(t *testing.T) {
	need(t)
	m, text := homeManifest(t, `{ services.podman.enable = true; services.podman.containers.offline = { image = "o"; ports = [ "8080:80" ]; network = "none"; }; }`)
	if len(m.Services) != 0 || len(m.Notes) != 1 || !strings.Contains(m.Notes[0], `network = "none"`) {
		t.Errorf("manifest %s: want no claim and a note", text)
	}
}

// Issue 16: home-manager names a container's unit after its ContainerName
// (extraConfig.Container.ContainerName), and publishes extraConfig's
// PublishPort too: the claims name the unit home-manager generates.
func TestClaimsNameTheUnitHomeManagerGenerates(t *testing.T) {
	need(t)
	var r struct {
		Manifest string   `json:"manifest"`
		Units    []string `json:"units"`
	}
	err := Eval(context.Background(), `let h = e.home { modules = [ {
  services.podman.enable = true;
  services.podman.containers.local-ai-ollama = {
    image = "o";
    ports = [ "11434:11434" ];
    extraConfig.Container.ContainerName = "ollama-main";
    extraConfig.Container.PublishPort = [ "11435:11435" ];
  };
  services.portclaim.enable = true;
} ]; }; in {
  manifest = h.config.services.portclaim.manifest.text;
  units = map (q: q.serviceName + ".service") (builtins.filter (q: q.resourceType == "container") h.config.services.podman.internal.quadletDefinitions);
}`, &r)
	if err != nil {
		t.Fatal(err)
	}
	var m manifestDoc
	json.Unmarshal([]byte(r.Manifest), &m)
	if len(m.Services) != 1 || !slices.Equal(m.Services[0].UserUnits, r.Units) || len(m.Services[0].Ports) != 2 {
		t.Errorf("manifest %s: want the unit home-manager generates, %v, and both ports", r.Manifest, r.Units)
	}
}

// Issue 16: under yieldKnownServices, a home-manager user whose name
// portclaim refuses does not break the system: a warning names them.
func TestYieldKnownServicesSkipsNamesPortclaimRefuses(t *testing.T) {
	need(t)
	r, err := evalNixOS(t, `{
  services.ollama.enable = true;
  services.portclaim.enable = true;
  services.portclaim.yieldKnownServices = true;
  users.users."john doe" = { isNormalUser = true; uid = 1002; };
  home-manager.users."john doe" = `+aliceOllamaContainer+`;
  home-manager.users.alice = `+aliceOllamaContainer+`;
}`)
	if err != nil {
		t.Fatalf("the system does not evaluate: %v", err)
	}
	if y := policyYield(t, r); strings.Join(y["ollama.service"], " ") != "alice" {
		t.Errorf("policy %s: want ollama.service for alice alone", r.Policy)
	}
	if ws := warningsAbout(r.Checks.Warnings, `"john doe"`); len(ws) != 1 {
		t.Errorf("warnings %q: want one naming \"john doe\"", r.Checks.Warnings)
	}
	// His own collision warning cannot suggest a policy line with his name.
	if ws := warningsAbout(r.Checks.Warnings, `users = [ "john doe" ]`); len(ws) != 0 {
		t.Errorf("warnings %q suggest a yield to a name portclaim refuses", ws)
	}
}

// Issue 16: yieldKnownServices grants a unit to a user only where their
// claim would collide with it: home-manager's ollama on another port does not.
func TestYieldKnownServicesOnlyWhereClaimsCollide(t *testing.T) {
	need(t)
	r := mustNixOS(t, `{
  services.ollama.enable = true;
  services.portclaim.enable = true;
  services.portclaim.yieldKnownServices = true;
  home-manager.users.alice = `+hmUser(`services.ollama = { enable = true; port = 11500; }; services.portclaim.enable = true;`)+`;
  home-manager.users.bob = `+hmUser(`services.ollama.enable = true; services.portclaim.enable = true;`)+`;
}`)
	if y := policyYield(t, r); strings.Join(y["ollama.service"], " ") != "bob" {
		t.Errorf("policy %s: want ollama.service for bob alone (alice's ollama is on 11500)", r.Policy)
	}
}

// Issue 16: the broker runs with PrivateTmp=yes: claims under /tmp or
// /var/tmp would be its own, invisible to the start conditions.
func TestClaimsDirUnderTmpIsRefused(t *testing.T) {
	need(t)
	for _, dir := range []string{"/tmp/portclaim", "/var/tmp/claims", "/tmp"} {
		_, err := evalNixOS(t, `{ services.portclaim.enable = true; services.portclaim.claimsDir = "`+dir+`"; }`)
		var e *Error
		if !errors.As(err, &e) || !strings.Contains(e.Stderr, "The option `services.portclaim.claimsDir'") || !strings.Contains(e.Stderr, "PrivateTmp") {
			t.Errorf("claimsDir %s: %v", dir, err)
		}
	}
}

// Issue 16: root has no claims of its own (portclaim refuses root without
// --user): root's home-manager gets no portclaim steps, and says so once
// when portclaim is on there, strict or not.
func TestRootsHomeManagerRunsNoPortclaimSteps(t *testing.T) {
	need(t)
	for name, rootHome := range map[string]string{
		"shared, off":    `{ home.stateVersion = "26.05"; }`,
		"on, strict":     `{ home.stateVersion = "26.05"; services.portclaim.enable = true; services.portclaim.strict = true; services.podman.enable = true; services.podman.containers.local-ai-ollama = { image = "o"; ports = [ "11434:11434" ]; }; }`,
		"on, not strict": `{ home.stateVersion = "26.05"; services.portclaim.enable = true; }`,
	} {
		t.Run(name, func(t *testing.T) {
			r := mustNixOS(t, `{
  services.ollama.enable = true;
  services.portclaim.enable = true;
  services.portclaim.yieldKnownServices = true;
  users.users.root = { uid = 0; home = "/root"; };
  home-manager.sharedModules = [ e.portclaim.homeManager ];
  home-manager.users.root = `+rootHome+`;
  home-manager.users.alice = `+aliceOllamaContainer+`;
}`)
			for _, n := range r.Users["root"].ActivationOrder {
				if strings.HasPrefix(n, "portclaim") {
					t.Errorf("root's activation runs %s: %v", n, r.Users["root"].ActivationOrder)
				}
			}
			if !slices.Contains(r.Users["alice"].ActivationOrder, "portclaim") {
				t.Errorf("alice lost her steps: %v", r.Users["alice"].ActivationOrder)
			}
			if len(r.Checks.FailedAssertions) != 0 {
				t.Errorf("failed assertions %q", r.Checks.FailedAssertions)
			}
			said := warningsAbout(r.Checks.Warnings, "root profile: portclaim")
			if on := strings.Contains(rootHome, "enable = true"); on && (len(said) != 1 || !strings.Contains(said[0], "--user")) || !on && len(said) != 0 {
				t.Errorf("warnings %q: want one for root when portclaim is on there, none when off", r.Checks.Warnings)
			}
			if y := policyYield(t, r); slices.Contains(y["ollama.service"], "root") {
				t.Errorf("policy %s lets ollama yield to root", r.Policy)
			}
		})
	}
}
