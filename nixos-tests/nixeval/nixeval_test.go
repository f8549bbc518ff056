package nixeval

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/portclaim/portclaim/pkg/manifest"
)

func need(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI must run the Nix checks: %v", err)
		}
		t.Skip(err)
	}
}

// TestEveryNixFileParses runs nix-instantiate --parse on every .nix file
// of the repository, and keeps each under 400 lines: one concern a file.
func TestEveryNixFileParses(t *testing.T) {
	need(t)
	n := 0
	filepath.WalkDir(RepoRoot(), func(path string, d os.DirEntry, err error) error {
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "vendor") {
			return filepath.SkipDir
		}
		if strings.HasSuffix(path, ".nix") {
			n++
			if err := Parse(context.Background(), path); err != nil {
				t.Error(err)
			}
			if data, err := os.ReadFile(path); err == nil && bytes.Count(data, []byte("\n")) > 400 {
				t.Errorf("%s has %d lines: split it by concern (at most 400)", path, bytes.Count(data, []byte("\n")))
			}
		}
		return nil
	})
	if n == 0 {
		t.Fatal("no .nix files found")
	}
}

// TestPortSpecs holds nix/lib.nix's podman port parser to the corpus
// pkg/manifest/testdata/port-specs.json, which the Go twin (pkg/manifest,
// TestPodmanPortsCorpus) is held to as well: a spec one side takes and the
// other refuses would fail the manifest's check at build time, or claim
// what podman does not bind.
func TestPortSpecs(t *testing.T) {
	need(t)
	var r struct {
		Valid map[string]json.RawMessage `json:"valid"`
		Want  map[string]json.RawMessage `json:"want"`
		// Invalid specs Nix takes anyway, with what it made of them.
		Taken map[string]json.RawMessage `json:"taken"`
	}
	err := Lib(context.Background(), `let
  c = builtins.fromJSON (builtins.readFile `+filepath.Join(RepoRoot(), "pkg", "manifest", "testdata", "port-specs.json")+`);
  try = spec: builtins.tryEval (builtins.deepSeq (pc.parsePortSpec spec) (pc.parsePortSpec spec));
in {
  valid = builtins.mapAttrs (spec: _: pc.parsePortSpec spec) c.valid;
  want = c.valid;
  taken = builtins.listToAttrs (map (spec: { name = spec; value = (try spec).value; }) (builtins.filter (spec: (try spec).success) c.invalid));
}`, &r)
	if err != nil {
		t.Fatal(err)
	}
	for spec, want := range r.Want {
		var got, w any
		json.Unmarshal(r.Valid[spec], &got)
		json.Unmarshal(want, &w)
		if fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("parsePortSpec %q = %s, want %s", spec, r.Valid[spec], want)
		}
	}
	for spec, got := range r.Taken {
		t.Errorf("parsePortSpec %q took an invalid spec: %s", spec, got)
	}
	if len(r.Want) < 20 {
		t.Errorf("%d valid specs in the corpus", len(r.Want))
	}
}

// TestRenderedManifestIsValid renders the README's example home.nix
// (derived claims plus an explicit entry) and checks the Go side accepts
// exactly that manifest: the two halves of the contract agree.
func TestRenderedManifestIsValid(t *testing.T) {
	need(t)
	data, err := Eval(context.Background(), fmt.Sprintf(`let pc = (import %s).lib; in pc.manifest {
  services = pc.deriveClaims {
    containers = {
      local-ai-ollama.ports = [ "11434:11434" ];
      local-ai-qdrant.ports = [ "6333:6333" "127.0.0.1:6334:6334" ];
      dns.ports = [ "127.0.0.1:5353:53/udp" ];
    };
    ollama = null;
  } // { searx = { systemUnits = [ "searx.service" ]; userUnits = [ "podman-searx.service" ]; ports = [ { port = 8888; } ]; }; };
}`, filepath.Join(RepoRoot(), "module.nix")))
	if err != nil {
		t.Fatal(err)
	}
	var js string
	if err := json.Unmarshal(data, &js); err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse("rendered", []byte(js))
	if err != nil {
		t.Fatalf("module.nix rendered a manifest portclaim rejects: %v\n%s", err, js)
	}
	var got []string
	for _, s := range m.Services {
		for _, p := range s.Ports {
			got = append(got, fmt.Sprintf("%s %v %s/%s %v", s.Name, s.SystemUnits, p, p.Proto, s.UserUnits))
		}
	}
	want := []string{
		"dns [] 127.0.0.1:5353/udp [podman-dns.service]",
		"ollama [ollama.service] *:11434/tcp [podman-local-ai-ollama.service]",
		"qdrant [qdrant.service] *:6333/tcp [podman-local-ai-qdrant.service]",
		"qdrant [qdrant.service] 127.0.0.1:6334/tcp [podman-local-ai-qdrant.service]",
		"searx [searx.service] *:8888/tcp [podman-searx.service]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestCollisionWarnings(t *testing.T) {
	need(t)
	var warnings []string
	err := Lib(context.Background(), `pc.collisions {
  user = "alice";
  services = pc.deriveClaims { containers.local-ai-ollama.ports = [ "11434:11434" ]; containers.local-ai-qdrant.ports = [ "6333:6333" ]; };
  enabledUnits = [ "ollama.service" "qdrant.service" "sshd.service" ];
  yield = { "qdrant.service" = [ "alice" ]; };
  enabledModules = [ "services.ollama" "services.qdrant" ];
}`, &warnings)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], `services.portclaim.yield."ollama.service".users = [ "alice" ];`) ||
		!strings.Contains(warnings[0], "services.ollama.enable = false;") || !strings.Contains(warnings[0], "11434/tcp") {
		t.Errorf("warnings = %q; want one, for ollama.service, naming both fixes", warnings)
	}
}

// TestNixScenariosMatch: every subtest of the NixOS VM tests names a Go
// end-to-end test that proves the same on systemd-nspawn machines.
func TestNixScenariosMatch(t *testing.T) {
	root := RepoRoot()
	goTests := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(root, "nixos-tests", "*_test.go"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`(?m)^func (Test\w+)\(`).FindAllStringSubmatch(string(data), -1) {
			goTests[m[1]] = true
		}
	}
	nixFiles, _ := filepath.Glob(filepath.Join(root, "nixos-tests", "*.nix"))
	if len(nixFiles) == 0 {
		t.Fatal("no NixOS VM tests in nixos-tests/")
	}
	for _, f := range nixFiles {
		data, _ := os.ReadFile(f)
		if !strings.Contains(string(data), "runNixOSTest") {
			continue // shared configuration, not a test
		}
		subtests := regexp.MustCompile(`subtest\("(Test\w+)`).FindAllStringSubmatch(string(data), -1)
		if len(subtests) == 0 {
			t.Errorf("%s has no subtest naming a Go scenario", filepath.Base(f))
		}
		for _, m := range subtests {
			if !goTests[m[1]] {
				t.Errorf("%s: subtest %s has no Go end-to-end test of that name", filepath.Base(f), m[1])
			}
		}
	}
}

// TestVendorHashMatches: flake.nix's vendorHash is the hash of `go mod
// vendor` for the committed go.sum, so the Nix build's module fetch works.
func TestVendorHashMatches(t *testing.T) {
	need(t)
	root := RepoRoot()
	flake, err := os.ReadFile(filepath.Join(root, "flake.nix"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`vendorHash = "(sha256-[A-Za-z0-9+/=]+)";`).FindSubmatch(flake)
	if m == nil {
		t.Fatal("flake.nix has no vendorHash")
	}
	vendor := filepath.Join(t.TempDir(), "vendor")
	cmd := exec.Command("go", "mod", "vendor", "-o", vendor)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go mod vendor: %v\n%s", err, out)
	}
	out, err := exec.Command("nix", "--extra-experimental-features", "nix-command", "--store", "dummy://", "hash", "path", vendor).CombinedOutput()
	if err != nil {
		t.Fatalf("nix hash path: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != string(m[1]) {
		t.Errorf("flake.nix vendorHash = %s, but go mod vendor hashes to %s: update it (README \"Updating\")", m[1], got)
	}
}

// TestFlakeLockPinsInputs: flake.lock pins both inputs of flake.nix to
// real-looking revisions (40 hex digits, an SRI narHash, a timestamp), on
// the branches flake.nix names, with home-manager following nixpkgs.
func TestFlakeLockPinsInputs(t *testing.T) {
	root := RepoRoot()
	data, err := os.ReadFile(filepath.Join(root, "flake.lock"))
	if err != nil {
		t.Fatal(err)
	}
	flake, _ := os.ReadFile(filepath.Join(root, "flake.nix"))
	var lock struct {
		Version int `json:"version"`
		Nodes   map[string]struct {
			Inputs map[string]any `json:"inputs"`
			Locked struct {
				Rev          string `json:"rev"`
				NarHash      string `json:"narHash"`
				LastModified int64  `json:"lastModified"`
				Owner, Repo  string
			} `json:"locked"`
			Original struct {
				Owner, Repo, Ref string
			} `json:"original"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(data, &lock); err != nil {
		t.Fatal(err)
	}
	rev := regexp.MustCompile(`^[0-9a-f]{40}$`)
	hash := regexp.MustCompile(`^sha256-[A-Za-z0-9+/]{43}=$`)
	for _, name := range []string{"nixpkgs", "home-manager"} {
		n, ok := lock.Nodes[name]
		if !ok {
			t.Fatalf("flake.lock has no %s node", name)
		}
		if !rev.MatchString(n.Locked.Rev) || !hash.MatchString(n.Locked.NarHash) || n.Locked.LastModified < 1.7e9 {
			t.Errorf("%s is not pinned: %+v", name, n.Locked)
		}
		url := fmt.Sprintf("github:%s/%s/%s", n.Original.Owner, n.Original.Repo, n.Original.Ref)
		if !strings.Contains(string(flake), url) {
			t.Errorf("flake.lock pins %s to %s, which flake.nix does not ask for", name, url)
		}
	}
	if f := lock.Nodes["home-manager"].Inputs["nixpkgs"]; fmt.Sprint(f) != "[nixpkgs]" {
		t.Errorf("home-manager's nixpkgs input = %v, want it to follow nixpkgs", f)
	}
}

// TestManifestVersion2 pins what version 2 adds: each derived service's
// origin (the container's declared ports verbatim, or home-manager's
// option), none for explicit entries, and notes, such as a container on
// the host's network, which publishes nothing and so claims nothing.
func TestManifestVersion2(t *testing.T) {
	need(t)
	var got string
	err := Lib(context.Background(), `pc.manifest {
  version = 2;
  services = pc.deriveClaims {
    containers = {
      local-ai-ollama.ports = [ "11434:11434" "127.0.0.1::9" ];
      web = { ports = [ "8080:80" ]; network = "host"; };
    };
    ollama = { host = "[::]"; port = 11500; };
  } // { searx = { systemUnits = [ ]; userUnits = [ "podman-searx.service" ]; ports = [ { port = 8888; } ]; }; };
  notes = pc.deriveNotes { containers.web = { ports = [ "8080:80" ]; network = [ "host" ]; }; };
}`, &got)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"autoResolve":true,"notes":["container web uses the host's network (network = \"host\"): it publishes no ports, so portclaim claims nothing for podman-web.service; declare its ports in services.portclaim.services to claim them"],` +
		`"services":[{"name":"home-manager-ollama","origin":{"homeManager":{"option":"services.ollama"}},"ports":[{"address":"::","port":11500,"protocol":"tcp"}],"systemUnits":["ollama.service"],"userUnits":["ollama.service"]},` +
		`{"name":"ollama","origin":{"podman":{"container":"local-ai-ollama","ports":["11434:11434","127.0.0.1::9"]}},"ports":[{"address":"","port":11434,"protocol":"tcp"}],"systemUnits":["ollama.service"],"userUnits":["podman-local-ai-ollama.service"]},` +
		`{"name":"searx","ports":[{"address":"","port":8888,"protocol":"tcp"}],"systemUnits":[],"userUnits":["podman-searx.service"]}],` +
		`"strategy":"disable-system","strict":false,"version":2}`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
