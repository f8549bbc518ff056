package moduleeval

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/portclaim/portclaim/nixos-tests/golden"
)

func need(t *testing.T) {
	t.Helper()
	if _, err := Sources(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI must evaluate the modules: %v", err)
		}
		t.Skip(err)
	}
}

// base is a NixOS configuration's common part: two normal users.
const base = `{
  users.users.alice = { isNormalUser = true; uid = 1000; };
  users.users.bob = { isNormalUser = true; uid = 1001; };
}`

// hmUser wraps a home.nix body with portclaim's home-manager module.
func hmUser(body string) string {
	return `{ imports = [ e.portclaim.homeManager ]; home.stateVersion = "26.05"; ` + body + ` }`
}

type checks struct {
	FailedAssertions []string `json:"failedAssertions"`
	Warnings         []string `json:"warnings"`
}

type userResult struct {
	Checks          checks   `json:"checks"`
	ActivationOrder []string `json:"activationOrder"`
	Manifest        string   `json:"manifest"`
}

type nixosResult struct {
	Checks    checks                     `json:"checks"`
	Installed map[string]json.RawMessage `json:"installed"`
	Users     map[string]userResult      `json:"users"`
	// What lib.systemFiles renders for the same options.
	SystemFiles map[string]json.RawMessage `json:"systemFiles"`
	Policy      string                     `json:"policy"`
	// systemd.services and systemd.sockets the configuration defines.
	Services []string `json:"services"`
}

// evalNixOS evaluates a NixOS configuration of base plus modules (Nix
// expressions), with home-manager's and portclaim's NixOS modules.
func evalNixOS(t *testing.T, modules ...string) (nixosResult, error) {
	t.Helper()
	var r nixosResult
	err := Eval(context.Background(), fmt.Sprintf(`let
  r = e.nixos { modules = [ %s %s ]; };
  c = r.config.services.portclaim;
in {
  inherit (r) checks installed;
  users = builtins.mapAttrs (_: u: {
    inherit (u) checks activationOrder;
    manifest = u.config.services.portclaim.manifest.text;
  }) r.users;
  systemFiles = if c.enable && e.portclaim.lib ? systemFiles then e.portclaim.lib.systemFiles {
    portclaim = lib.getExe c.package;
    yield = c.effectiveYield;
    inherit (c) claimsDir;
    textfileDirectory = c.metrics.textfileDirectory;
  } else { };
  policy = r.config.environment.etc."portclaim/policy.json".text or "";
  services = builtins.attrNames r.config.systemd.services ++ map (n: n + ".socket") (builtins.attrNames r.config.systemd.sockets);
}`, base, strings.Join(modules, " ")), &r)
	return r, err
}

func mustNixOS(t *testing.T, modules ...string) nixosResult {
	t.Helper()
	r, err := evalNixOS(t, modules...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// readmeSystem is the README's example: the system's ollama yields to
// alice, whose home.nix runs ollama in a podman container and claims
// searx by hand.
const readmeSystem = `{
  services.ollama.enable = true;
  services.portclaim = {
    enable = true;
    yield."ollama.service".users = [ "alice" ];
  };
  home-manager.users.alice = ` + readmeHome + `;
}`

const readmeHome = `{
  imports = [ e.portclaim.homeManager ];
  home.stateVersion = "26.05";
  services.podman.enable = true;
  services.podman.containers.local-ai-ollama = {
    image = "docker.io/ollama/ollama:latest";
    ports = [ "11434:11434" ];
  };
  services.portclaim.enable = true;
  services.portclaim.services.searx = {
    systemUnits = [ "searx.service" ];
    userUnits = [ "podman-searx.service" ];
    ports = [ { port = 8888; } ];
  };
}`

func render(r nixosResult) string {
	var b strings.Builder
	var paths []string
	for p := range r.Installed {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		var content string
		if json.Unmarshal(r.Installed[p], &content) == nil {
			b.WriteString("# " + p + "\n" + content)
			if !strings.HasSuffix(content, "\n") {
				b.WriteString("\n")
			}
		} else {
			b.WriteString("# " + p + " -> " + string(r.Installed[p]) + "\n")
		}
	}
	var users []string
	for u := range r.Users {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, u := range users {
		var pretty strings.Builder
		var v any
		json.Unmarshal([]byte(r.Users[u].Manifest), &v)
		out, _ := json.MarshalIndent(v, "", "  ")
		pretty.Write(out)
		b.WriteString("# " + u + "'s manifest\n" + pretty.String() + "\n")
		b.WriteString("# " + u + "'s activation order\n" + strings.Join(r.Users[u].ActivationOrder, " ") + "\n")
	}
	b.WriteString("# warnings\n" + strings.Join(r.Checks.Warnings, "\n") + "\n")
	b.WriteString("# failed assertions\n" + strings.Join(r.Checks.FailedAssertions, "\n") + "\n")
	return b.String()
}

// TestReadmeExampleGolden pins what the README's example installs on the
// system and renders for alice, evaluated by NixOS's and home-manager's
// module systems.
func TestReadmeExampleGolden(t *testing.T) {
	need(t)
	r := mustNixOS(t, readmeSystem)
	golden.Check(t, filepath.Join("testdata", "readme.golden"), render(r))
	if len(r.Checks.Warnings) != 0 || len(r.Checks.FailedAssertions) != 0 {
		t.Errorf("the README's example warns: %q %q", r.Checks.Warnings, r.Checks.FailedAssertions)
	}
}

// TestSystemFilesAgreeWithNixOS: what the NixOS module installs (through
// environment.etc, systemd.units, systemd.packages, systemd.tmpfiles
// packages, laid out as NixOS lays them out) is exactly lib.systemFiles,
// which the end-to-end machines install.
func TestSystemFilesAgreeWithNixOS(t *testing.T) {
	need(t)
	for name, config := range map[string]string{
		"readme": readmeSystem,
		"sockets, two users, another claims directory, metrics": `{
  services.portclaim = {
    enable = true;
    claimsDir = "/srv/portclaim";
    yield."qdrant.service".users = [ "bob" "alice" ];
    yield."qdrant.socket".users = [ "alice" ];
    metrics.textfileDirectory = "/var/lib/prometheus-node-exporter/textfile";
  };
  systemd.services.qdrant.wantedBy = [ "multi-user.target" ];
  systemd.sockets.qdrant.listenStreams = [ "6333" ];
}`,
		"nothing yields": `{ services.portclaim.enable = true; }`,
	} {
		t.Run(name, func(t *testing.T) {
			r := mustNixOS(t, config)
			if len(r.Installed) == 0 {
				t.Fatal("the NixOS module installs nothing")
			}
			for path, want := range r.SystemFiles {
				if got, ok := r.Installed[path]; !ok {
					t.Errorf("%s: in lib.systemFiles, not installed by the NixOS module", path)
				} else if string(got) != string(want) {
					t.Errorf("%s: the NixOS module installs\n%s\nlib.systemFiles says\n%s", path, got, want)
				}
			}
			for path := range r.Installed {
				if _, ok := r.SystemFiles[path]; !ok {
					t.Errorf("%s: installed by the NixOS module, not in lib.systemFiles", path)
				}
			}
		})
	}
}

// TestNixOSModuleOff: without enable, nothing is installed.
func TestNixOSModuleOff(t *testing.T) {
	need(t)
	r := mustNixOS(t, `{ services.portclaim.yield."ollama.service".users = [ "alice" ]; }`)
	if len(r.Installed) != 0 {
		t.Errorf("services.portclaim.enable = false installs %v", r.Installed)
	}
}

// TestActivationOrder: resolve runs after linkGeneration and before
// reloadSystemd (sd-switch starts the user units into free ports), release
// after it, standalone and as a NixOS module.
func TestActivationOrder(t *testing.T) {
	need(t)
	check := func(t *testing.T, order []string) {
		t.Helper()
		at := map[string]int{}
		for i, n := range order {
			at[n] = i + 1
		}
		for _, pair := range [][2]string{{"linkGeneration", "portclaim"}, {"portclaim", "reloadSystemd"}, {"reloadSystemd", "portclaimRelease"}} {
			if at[pair[0]] == 0 || at[pair[1]] == 0 || at[pair[0]] > at[pair[1]] {
				t.Errorf("activation order %v: want %s before %s", order, pair[0], pair[1])
			}
		}
	}
	r := mustNixOS(t, readmeSystem)
	check(t, r.Users["alice"].ActivationOrder)

	var h struct {
		Order []string `json:"order"`
	}
	if err := Eval(context.Background(), `let r = e.home { modules = [ { services.portclaim.enable = true; } ]; }; in { order = r.activationOrder; }`, &h); err != nil {
		t.Fatal(err)
	}
	check(t, h.Order)
}

// TestStandaloneHomeManager: home-manager on its own (no osConfig) renders
// the manifest, links it where the CLI looks by default, installs the
// binary, and has no system to compare against: no warnings.
func TestStandaloneHomeManager(t *testing.T) {
	need(t)
	var r struct {
		Checks   checks   `json:"checks"`
		Manifest string   `json:"manifest"`
		Linked   string   `json:"linked"`
		Packages []string `json:"packages"`
		Check    string   `json:"check"`
	}
	err := Eval(context.Background(), `let
  r = e.home { modules = [ {
    services.podman.enable = true;
    services.podman.containers.local-ai-qdrant = { image = "qdrant"; ports = [ "6333:6333" "127.0.0.1:6334:6334" ]; };
    services.ollama.enable = true;
    services.ollama.port = 11500;
    services.portclaim.enable = true;
  } ]; };
  m = r.config.services.portclaim.manifest;
in {
  inherit (r) checks;
  manifest = m.text;
  linked = r.config.xdg.configFile."portclaim/manifest.json".source.outPath;
  packages = map (p: p.name) r.config.home.packages;
  check = m.checkPhase;
}`, &r)
	if err != nil {
		t.Fatal(err)
	}
	var m manifestDoc
	if err := json.Unmarshal([]byte(r.Manifest), &m); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range m.Services {
		for _, p := range s.Ports {
			got = append(got, fmt.Sprintf("%s %v %v %s:%d", s.Name, s.SystemUnits, s.UserUnits, p.Address, p.Port))
		}
	}
	want := []string{
		"ollama [ollama.service] [ollama.service] 127.0.0.1:11500",
		"qdrant [qdrant.service] [podman-local-ai-qdrant.service] :6333",
		"qdrant [qdrant.service] [podman-local-ai-qdrant.service] 127.0.0.1:6334",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("claims:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.HasSuffix(r.Linked, "-portclaim-manifest.json") {
		t.Errorf("xdg.configFile.\"portclaim/manifest.json\" links %q, not the manifest", r.Linked)
	}
	if !strings.Contains(strings.Join(r.Packages, " "), "portclaim") {
		t.Errorf("home.packages = %v, without portclaim", r.Packages)
	}
	if !strings.Contains(r.Check, `/bin/portclaim validate "$out"`) {
		t.Errorf("the manifest is not validated while it builds: checkPhase %q", r.Check)
	}
	if len(r.Checks.Warnings)+len(r.Checks.FailedAssertions) != 0 {
		t.Errorf("standalone warnings %q, assertions %q", r.Checks.Warnings, r.Checks.FailedAssertions)
	}
}

// TestCrossBuildValidatesWithABuildPlatformBinary: where the build
// platform cannot run the host's portclaim, the manifest is checked with
// pkgsBuildHost's.
func TestCrossBuildValidatesWithABuildPlatformBinary(t *testing.T) {
	need(t)
	var r struct {
		Native string `json:"native"`
		Cross  string `json:"cross"`
	}
	err := Eval(context.Background(), `let
  v = args: (e.home { pkgsArgs = args; modules = [ {
    services.portclaim.enable = true;
    services.portclaim.package = lib.mkForce ((e.pkgsFor args).portclaim // { outPath = "/host/portclaim"; });
  } ]; }).config.services.portclaim.manifest.checkPhase;
in { native = v { }; cross = v { native = false; }; }`, &r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Native, "/host/portclaim/bin/portclaim validate") {
		t.Errorf("native build validates with %q, want the package itself", r.Native)
	}
	if strings.Contains(r.Cross, "/host/portclaim") || !strings.Contains(r.Cross, "portclaim-0.1.0/bin/portclaim validate") {
		t.Errorf("cross build validates with %q, want pkgsBuildHost.portclaim", r.Cross)
	}
}
