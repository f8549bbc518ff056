package moduleeval

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// driverNames are the globals the NixOS test driver gives a testScript
// (nixos/lib/test-driver's Driver.test_symbols), besides one per node
// ("machine" too when there is a single node). "machines" is the older
// releases' name for the node list.
var driverNames = []string{
	"start_all", "test_script", "machines", "machines_qemu", "machines_nspawn", "vlans", "driver",
	"log", "os", "create_machine", "subtest", "run_tests", "join_all", "retry",
	"serial_stdout_off", "serial_stdout_on", "polling_condition", "BaseMachine", "t", "debug",
}

// checkScript compiles a testScript (argv[1]) and reports every name it
// reads that nothing defines: not the script (at module level), not
// Python's builtins, not the driver (argv[2:]).
const checkScript = `
import builtins, symtable, sys

src = open(sys.argv[1]).read()
known = set(sys.argv[2:]) | set(dir(builtins))
try:
    compile(src, "testScript", "exec")
except SyntaxError as e:
    print(f"SyntaxError: {e.msg} at line {e.lineno}: {(e.text or '').strip()}")
    sys.exit(1)

top = symtable.symtable(src, "testScript", "exec")
defined = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported() or s.is_namespace()}
undefined = set()

def walk(table, module):
    for s in table.get_symbols():
        if not s.is_referenced():
            continue
        name = s.get_name()
        if module:
            if not (name in defined or name in known):
                undefined.add(name)
        elif s.is_global() and not (name in defined or name in known):
            undefined.add(name)
    for child in table.get_children():
        walk(child, False)

walk(top, True)
if undefined:
    print("undefined names: " + ", ".join(sorted(undefined)))
    sys.exit(1)
`

// TestVMTestScriptsCompile renders every NixOS VM test's testScript
// against its evaluated nodes, as runNixOSTest would, and compiles it with
// python3 against the test driver's names: a script that would die in the
// driver with a SyntaxError or a NameError fails here.
func TestVMTestScriptsCompile(t *testing.T) {
	need(t)
	if _, err := exec.LookPath("python3"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3 is needed to compile the VM tests' scripts")
		}
		t.Skip("no python3")
	}
	files, _ := filepath.Glob(filepath.Join(RepoRoot(), "nixos-tests", "*.nix"))
	n := 0
	dir := t.TempDir()
	checker := filepath.Join(dir, "check.py")
	os.WriteFile(checker, []byte(checkScript), 0o644)
	for _, f := range files {
		data, _ := os.ReadFile(f)
		if !strings.Contains(string(data), "import ./vm/test.nix") {
			continue // not a VM test
		}
		n++
		t.Run(filepath.Base(f), func(t *testing.T) {
			var r struct {
				Script string   `json:"script"`
				Nodes  []string `json:"nodes"`
			}
			if err := Eval(context.Background(), "e.renderTestScript "+f, &r); err != nil {
				t.Fatal(err)
			}
			script := filepath.Join(dir, filepath.Base(f)+".py")
			os.WriteFile(script, []byte(r.Script), 0o644)
			names := append(append([]string{}, driverNames...), r.Nodes...)
			if len(r.Nodes) == 1 {
				names = append(names, "machine")
			}
			out, err := exec.Command("python3", append([]string{checker, script}, names...)...).CombinedOutput()
			if err != nil {
				t.Errorf("%s's testScript would fail in the test driver: %s\n(rendered script: %s)", filepath.Base(f), out, script)
			}
		})
	}
	if n < 2 {
		t.Errorf("found %d VM tests, want detect.nix and resolve.nix at least", n)
	}
}

// TestTheScriptCheckerCatches: the checker itself finds the old
// json.loads('...') apostrophe bug and an undefined name.
func TestTheScriptCheckerCatches(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI compiles the VM tests' scripts with python3 (apt-get install python3)")
		}
		t.Skip("no python3")
	}
	dir := t.TempDir()
	checker := filepath.Join(dir, "check.py")
	os.WriteFile(checker, []byte(checkScript), 0o644)
	for src, want := range map[string]string{
		"import json\nwarnings = json.loads('[\"alice's unit\"]')\n":   "SyntaxError",
		"def f():\n    return machin.succeed('true')\nf()\n":           "undefined names: machin",
		"with subtest('x'):\n    mashine.succeed('true')\n":            "undefined names: mashine",
		"import json\nx = json.loads('[]')\nmachine.succeed('true')\n": "",
	} {
		script := filepath.Join(dir, "s.py")
		os.WriteFile(script, []byte(src), 0o644)
		out, err := exec.Command("python3", append([]string{checker, script, "machine"}, driverNames...)...).CombinedOutput()
		if want == "" && err != nil || want != "" && !strings.Contains(string(out), want) {
			t.Errorf("%q: checker says %q (%v), want %q", src, out, err, want)
		}
	}
}

// TestResolveVMSpecialisations: the resolve VM test's specialisations do
// what a real switch needs. released and off remove alice's ollama unit
// (a unit defined as { } would be an empty unit file, not a removed one);
// the script stops her unit before switching to dropped, which restarts
// multi-user.target, and so ollama.service, without her claim's condition.
func TestResolveVMSpecialisations(t *testing.T) {
	need(t)
	var r struct {
		Units  map[string][]string `json:"units"`
		Files  map[string][]string `json:"files"`
		Script string              `json:"script"`
	}
	f := filepath.Join(RepoRoot(), "nixos-tests", "resolve.nix")
	err := Eval(context.Background(), `let
  test = import `+f+`;
  node = (test.nodesFor {
    home-manager.nixosModules.home-manager = { };
    portclaimModules = { inherit (e.portclaim) nixos homeManager; };
  }).machine;
  base = e.nixos { modules = [ node ]; };
  spec = name: base.extendModules { modules = [ base.config.specialisation.${name}.configuration ]; };
  alice = c: c.config.home-manager.users.alice;
  units = c: builtins.attrNames (alice c).systemd.user.services;
  files = c: builtins.filter (lib.hasPrefix "systemd/user/podman-") (builtins.attrNames (alice c).xdg.configFile);
in {
  units = { base = units base; released = units (spec "released"); off = units (spec "off"); };
  files = { base = files base; released = files (spec "released"); off = files (spec "off"); };
  script = (e.renderTestScript `+f+`).script;
}`, &r)
	if err != nil {
		t.Fatal(err)
	}
	const ollama = "podman-local-ai-ollama"
	if !slices.Contains(r.Units["base"], ollama) || !slices.Contains(r.Files["base"], "systemd/user/"+ollama+".service") {
		t.Fatalf("the base configuration has no %s: %v %v", ollama, r.Units["base"], r.Files["base"])
	}
	for _, s := range []string{"released", "off"} {
		if slices.Contains(r.Units[s], ollama) || slices.Contains(r.Files[s], "systemd/user/"+ollama+".service") {
			t.Errorf("specialisation %s keeps alice's %s (units %v, files %v)", s, ollama, r.Units[s], r.Files[s])
		}
	}
	stop := strings.Index(r.Script, "systemctl --user stop "+ollama+".service")
	drop := strings.Index(r.Script, `switch("dropped")`)
	if stop < 0 || drop < 0 || stop > drop {
		t.Errorf("the script switches to dropped (at %d) before it stops alice's unit (at %d)", drop, stop)
	}
}
