package moduleeval

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// corpus reads one of the name corpora the Go side tests against.
func corpus(t *testing.T, rel string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(RepoRoot(), rel))
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]json.RawMessage
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for k, v := range c {
		var names []string
		if json.Unmarshal(v, &names) == nil {
			out[k] = names
		}
	}
	return out
}

// accepted evaluates, for every name in the corpus, whether a NixOS
// configuration that uses it (by the Nix expression use, a function of
// the name) evaluates: the option types either take it or throw.
func accepted(t *testing.T, rel, use string) map[string]bool {
	t.Helper()
	var r []struct {
		Name string `json:"name"`
		OK   bool   `json:"ok"`
	}
	err := Eval(context.Background(), `let
  c = builtins.fromJSON (builtins.readFile `+filepath.Join(RepoRoot(), rel)+`);
  names = lib.concatLists (lib.attrValues (lib.filterAttrs (n: _: n != "_comment") c));
  use = `+use+`;
  try = name: (builtins.tryEval (builtins.deepSeq (use name) true)).success;
in map (name: { inherit name; ok = try name; }) names`, &r)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, x := range r {
		out[x.Name] = x.OK
	}
	return out
}

// TestUnitNameTypesMatchTheCorpus: services.portclaim.yield takes exactly
// the corpus's claimable names (rejects valid-but-not-claimable and
// invalid ones), and the home-manager module's unit options take exactly
// the claimable and valid ones.
func TestUnitNameTypesMatchTheCorpus(t *testing.T) {
	need(t)
	const rel = "pkg/unitname/testdata/names.json"
	c := corpus(t, rel)
	yield := accepted(t, rel, `name: (e.nixos { modules = [ { services.portclaim.enable = true; services.portclaim.yield.${name}.users = [ "alice" ]; } ]; }).config.environment.etc."portclaim/policy.json".text`)
	hm := accepted(t, rel, `name: (e.home { modules = [ { services.portclaim.enable = true; services.portclaim.services.x = { systemUnits = [ name ]; userUnits = [ "u.service" ]; ports = [ { port = 1; } ]; }; } ]; }).config.services.portclaim.manifest.text`)
	lib := accepted(t, rel, `name: if e.portclaim.lib.isClaimableUnit name then true else throw "no"`)
	n := 0
	for class, names := range c {
		for _, name := range names {
			n++
			if want := class == "claimable"; yield[name] != want || lib[name] != want {
				t.Errorf("%s name %q: services.portclaim.yield takes it: %v, lib.isClaimableUnit: %v; want %v", class, name, yield[name], lib[name], want)
			}
			if want := class != "invalid"; hm[name] != want {
				t.Errorf("%s name %q: home-manager's systemUnits takes it: %v, want %v", class, name, hm[name], want)
			}
		}
	}
	if n != len(yield) || n < 20 {
		t.Errorf("evaluated %d names, the corpus has %d", len(yield), n)
	}
}

// TestUserNameTypeMatchesTheCorpus: services.portclaim.yield.<unit>.users
// takes exactly the corpus's valid user names.
func TestUserNameTypeMatchesTheCorpus(t *testing.T) {
	need(t)
	const rel = "pkg/policy/testdata/users.json"
	c := corpus(t, rel)
	got := accepted(t, rel, `name: (e.nixos { modules = [ { services.portclaim.enable = true; services.portclaim.yield."ollama.service".users = [ name ]; } ]; }).config.environment.etc."portclaim/policy.json".text`)
	n := 0
	for class, names := range c {
		for _, name := range names {
			n++
			if want := class == "valid"; got[name] != want {
				t.Errorf("%s user %q: taken: %v, want %v", class, name, got[name], want)
			}
		}
	}
	if n != len(got) || n < 20 {
		t.Errorf("evaluated %d names, the corpus has %d", len(got), n)
	}
}
