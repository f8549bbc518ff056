package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// genRun runs portclaim with args the way main does, with its output in
// buffers.
func genRun(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdout: &out, stderr: &errb, stdin: strings.NewReader(""), euid: os.Geteuid(),
		getenv: func(string) string { return "" }}
	code = run(args, a)
	return out.String(), errb.String(), code
}

// genScript is `portclaim completion shell`, which must print the script
// and nothing else, on stdout only.
func genScript(t *testing.T, shell string) string {
	t.Helper()
	out, errs, code := genRun(t, "completion", shell)
	if code != exitOK || errs != "" {
		t.Fatalf("portclaim completion %s: exit %d, stderr %q", shell, code, errs)
	}
	return out
}

// modelCommand is a command a user may type, as the parser knows it: read
// from kong's model directly, not through the generators' own helpers.
type modelCommand struct {
	name  string
	flags []string // long flags, with "--", the parents' included
}

func modelCommands(t *testing.T) []modelCommand {
	t.Helper()
	var c cli
	k, err := newParser(&c, &app{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}})
	if err != nil {
		t.Fatal(err)
	}
	var root []string
	for _, f := range k.Model.Flags {
		if !f.Hidden {
			root = append(root, "--"+f.Name)
		}
	}
	var out []modelCommand
	for _, n := range k.Model.Children {
		if n.Hidden {
			continue
		}
		if len(n.Children) > 0 {
			t.Fatalf("%s has subcommands: extend these tests to walk them", n.Name)
		}
		mc := modelCommand{name: n.Name, flags: slices.Clone(root)}
		for _, f := range n.Flags {
			if !f.Hidden {
				mc.flags = append(mc.flags, "--"+f.Name)
			}
		}
		out = append(out, mc)
	}
	if len(out) < 8 {
		t.Fatalf("only %d commands in the model: the walk is wrong", len(out))
	}
	return out
}

func TestCompletionUnknownShellIsBadInput(t *testing.T) {
	out, errs, code := genRun(t, "completion", "tcsh")
	if code != exitBadInput {
		t.Errorf("exit %d, want %d", code, exitBadInput)
	}
	if out != "" {
		t.Errorf("stdout %q, want nothing", out)
	}
	for _, sh := range []string{"bash", "zsh", "fish", "tcsh"} {
		if !strings.Contains(errs, sh) {
			t.Errorf("the error does not name %s: %q", sh, errs)
		}
	}
	if _, _, code := genRun(t, "completion"); code != exitBadInput {
		t.Errorf("no shell: exit %d, want %d", code, exitBadInput)
	}
}

func TestCompletionScriptsParse(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ shell, want string }{
		{"bash", "# bash completion"}, {"zsh", "#compdef portclaim\n"}, {"fish", "# fish completion"},
	} {
		script := genScript(t, c.shell)
		if !strings.HasPrefix(script, c.want) {
			t.Errorf("%s: the script starts %.40q, want %q", c.shell, script, c.want)
		}
		path := filepath.Join(dir, "portclaim."+c.shell)
		if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
		check := map[string][]string{"bash": {"bash", "-n"}, "zsh": {"zsh", "-n"}, "fish": {"fish", "--no-execute"}}[c.shell]
		if _, err := exec.LookPath(check[0]); err != nil {
			t.Logf("%s is not installed: its script's syntax is not checked", check[0])
			continue
		}
		if out, err := exec.Command(check[0], append(check[1:], path)...).CombinedOutput(); err != nil {
			t.Errorf("%s %s: %v\n%s", strings.Join(check, " "), path, err, out)
		}
	}
}

// bashComplete sources the script and completes words as bash would for a
// user who typed them (the last is the one under the cursor).
func bashComplete(t *testing.T, script string, words ...string) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "portclaim.bash")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	// Each word as its own argument: no quoting to get wrong.
	prog := `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=()
_portclaim && printf '%s\n' "${COMPREPLY[@]}"`
	cmd := exec.Command("bash", append([]string{"-c", prog, "bash", path}, words...)...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil || errb.Len() > 0 {
		t.Fatalf("completing %q: %v\n%s", words, err, errb.String())
	}
	return strings.Fields(string(out))
}

func TestBashCompletes(t *testing.T) {
	script := genScript(t, "bash")
	dir := t.TempDir()
	manifest := filepath.Join(dir, "manifest.json")
	if err := os.WriteFile(manifest, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		words []string
		want  []string
	}{
		{[]string{"portclaim", "res"}, []string{"resolve"}},
		{[]string{"portclaim", "check", "--j"}, []string{"--json"}},
		{[]string{"portclaim", "--version", "st"}, []string{"status"}},
		// The enum kong knows, as the next word and after "=" (bash splits there).
		{[]string{"portclaim", "completion", "z"}, []string{"zsh"}},
		{[]string{"portclaim", "completion", ""}, []string{"bash", "fish", "zsh"}},
		// Paths: a flag's and an argument's.
		{[]string{"portclaim", "check", "--manifest", filepath.Join(dir, "man")}, []string{manifest}},
		{[]string{"portclaim", "check", "--manifest", "=", filepath.Join(dir, "man")}, []string{manifest}},
		{[]string{"portclaim", "validate", filepath.Join(dir, "m")}, []string{manifest}},
		// A port and a duration: nothing to suggest, certainly no files.
		{[]string{"portclaim", "who", ""}, nil},
		{[]string{"portclaim", "check", "--timeout", ""}, nil},
		// A flag's value is no command: check takes no arguments.
		{[]string{"portclaim", "check", "--manifest", "status", ""}, nil},
		// The hidden broker is not offered.
		{[]string{"portclaim", "b"}, nil},
	} {
		got := bashComplete(t, script, c.words...)
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("%q: completed to %q, want %q", c.words, got, c.want)
		}
	}
	// --user completes login names: root is one on every machine.
	for _, words := range [][]string{{"portclaim", "check", "--user", "roo"}, {"portclaim", "status", "--user", "=", "roo"}} {
		if got := bashComplete(t, script, words...); !slices.Contains(got, "root") {
			t.Errorf("%q: completed to %q, want root among them", words, got)
		}
	}
}

// Every command and every flag of the model is offered where it applies:
// asked of bash itself, and of fish where it is installed.
func TestCompletionsOfferTheWholeModel(t *testing.T) {
	commands := modelCommands(t)
	var names []string
	for _, c := range commands {
		names = append(names, c.name)
	}
	slices.Sort(names)

	bash := genScript(t, "bash")
	got := bashComplete(t, bash, "portclaim", "")
	slices.Sort(got)
	if !slices.Equal(got, names) {
		t.Errorf("bash: portclaim <TAB> offers %q, want %q", got, names)
	}
	for _, c := range commands {
		got := bashComplete(t, bash, "portclaim", c.name, "--")
		for _, f := range c.flags {
			if !slices.Contains(got, f) {
				t.Errorf("bash: portclaim %s --<TAB> offers %q, not %s", c.name, got, f)
			}
		}
	}

	zsh := genScript(t, "zsh")
	for _, c := range commands {
		body := zshFunction(t, zsh, "_portclaim_"+c.name)
		if !strings.Contains(zshFunction(t, zsh, "_portclaim"), "'"+c.name+":") {
			t.Errorf("zsh: %s is not among portclaim's commands", c.name)
		}
		for _, f := range c.flags {
			if !regexp.MustCompile(`'(\([^)]*\))?` + regexp.QuoteMeta(f) + `=?\[`).MatchString(body) {
				t.Errorf("zsh: _portclaim_%s has no spec for %s", c.name, f)
			}
		}
	}

	if _, err := exec.LookPath("fish"); err != nil {
		t.Log("fish is not installed: its completions are only checked as text")
		fish := genScript(t, "fish")
		for _, c := range commands {
			for _, f := range c.flags {
				if !strings.Contains(fish, "-l '"+strings.TrimPrefix(f, "--")+"'") {
					t.Errorf("fish: no completion for %s", f)
				}
			}
		}
		return
	}
	fish := genScript(t, "fish")
	got = fishComplete(t, fish, "portclaim ")
	slices.Sort(got)
	if !slices.Equal(got, names) {
		t.Errorf("fish: portclaim <TAB> offers %q, want %q", got, names)
	}
	for _, c := range commands {
		got := fishComplete(t, fish, "portclaim "+c.name+" --")
		for _, f := range c.flags {
			if !slices.Contains(got, f) {
				t.Errorf("fish: portclaim %s --<TAB> offers %q, not %s", c.name, got, f)
			}
		}
	}
}

// zshFunction is the body of the function name in a zsh script.
func zshFunction(t *testing.T, script, name string) string {
	t.Helper()
	_, body, ok := strings.Cut(script, "\n"+name+"() {\n")
	if !ok {
		t.Fatalf("zsh: no function %s", name)
	}
	body, _, _ = strings.Cut(body, "\n}\n")
	return body
}

// fishComplete asks fish what it completes line to, with the script loaded.
func fishComplete(t *testing.T, script, line string) []string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "portclaim.fish")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("fish", "-c", `source $argv[1]; complete -C $argv[2]`, path, line)
	// A home of its own: no user configuration, and nothing written to yours.
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil || errb.Len() > 0 {
		t.Fatalf("fish completing %q: %v\n%s", line, err, errb.String())
	}
	var words []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if w, _, _ := strings.Cut(l, "\t"); w != "" {
			words = append(words, w)
		}
	}
	return words
}

func TestFishCompletes(t *testing.T) {
	if _, err := exec.LookPath("fish"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI checks this with what .ci/run installs")
		}
		t.Skip("fish is not installed")
	}
	fish := genScript(t, "fish")
	for _, c := range []struct {
		line string
		want []string
	}{
		{"portclaim res", []string{"resolve"}},
		{"portclaim check --j", []string{"--json"}},
		{"portclaim completion ", []string{"bash", "fish", "zsh"}},
		{"portclaim completion bash ", nil},
		{"portclaim who ", nil},
		{"portclaim b", nil},
	} {
		got := fishComplete(t, fish, c.line)
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("%q: completed to %q, want %q", c.line, got, c.want)
		}
	}
	if got := fishComplete(t, fish, "portclaim check --user roo"); !slices.Contains(got, "root") {
		t.Errorf("--user: completed to %q, want root among them", got)
	}
}

// The generators follow kong's model wherever it goes: aliases, negations,
// hidden flags and commands, and choices, in a CLI of its own.
func TestCompletionFollowsTheModel(t *testing.T) {
	var toy struct {
		Colour bool   `negatable:""`
		Level  string `aliases:"lvl" short:"l" enum:"low,high" default:"low"`
		Secret string `hidden:""`
		Run    struct {
			Into string
		} `cmd:""`
		Ghost struct{} `cmd:"" hidden:""`
	}
	k, err := kong.New(&toy, kong.Name("portclaim"))
	if err != nil {
		t.Fatal(err)
	}
	root := completionTree(k.Model)
	var names []string
	for _, f := range root.flags {
		names = append(names, f.dashed()...)
	}
	slices.Sort(names)
	if want := []string{"--colour", "--help", "--level", "--lvl", "--no-colour", "-h", "-l"}; !slices.Equal(names, want) {
		t.Errorf("flags %q, want %q", names, want)
	}
	if len(root.children) != 1 || root.children[0].key() != "run" {
		t.Fatalf("commands %v, want run alone", root.children)
	}
	script := bashCompletion(root)
	if got := bashComplete(t, script, "portclaim", "run", "--lvl", ""); !slices.Equal(got, []string{"low", "high"}) {
		t.Errorf("--lvl: %q, want the enum", got)
	}
	if got := bashComplete(t, script, "portclaim", "run", "--s"); len(got) != 0 {
		t.Errorf("the hidden --secret is offered: %q", got)
	}
}
