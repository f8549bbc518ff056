package main

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// renderMan formats the page as man would on an 80-column terminal,
// failing on any warning groff has.
func renderMan(t *testing.T, page string) string {
	t.Helper()
	if _, err := exec.LookPath("groff"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI checks this with what .ci/run installs")
		}
		t.Skip("groff is not installed (Debian: groff-base)")
	}
	path := filepath.Join(t.TempDir(), "portclaim.1")
	if err := os.WriteFile(path, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	// -ww: every warning; -rLL: the line length man uses at 80 columns.
	cmd := exec.Command("groff", "-man", "-Tutf8", "-ww", "-rLL=78n", "-P", "-cbou", path)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil || errb.Len() > 0 {
		t.Fatalf("groff: %v\n%s", err, errb.String())
	}
	return string(out)
}

// manSection is the text of one section of the rendered page.
func manSection(t *testing.T, text, name string) string {
	t.Helper()
	_, rest, ok := strings.Cut(text, "\n"+name+"\n")
	if !ok {
		t.Fatalf("no %s section in:\n%s", name, text)
	}
	if loc := regexp.MustCompile(`\n[A-Z][A-Z ]+\n`).FindStringIndex(rest); loc != nil {
		rest = rest[:loc[0]]
	}
	// Every line of the section, the first too, after a newline.
	return "\n" + rest
}

func genMan(t *testing.T) string {
	t.Helper()
	out, errs, code := genRun(t, "man")
	if code != exitOK || errs != "" {
		t.Fatalf("portclaim man: exit %d, stderr %q", code, errs)
	}
	if !strings.HasPrefix(out, ".TH PORTCLAIM 1 ") {
		t.Fatalf("the page starts %.40q, want a .TH for section 1", out)
	}
	return out
}

func TestManPageRendersAndHasItsSections(t *testing.T) {
	text := renderMan(t, genMan(t))
	for _, s := range []string{"NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "EXIT STATUS", "FILES", "ENVIRONMENT", "SEE ALSO"} {
		manSection(t, text, s)
	}
	name := strings.Join(strings.Fields(manSection(t, text, "NAME")), " ")
	if name != "portclaim - let home-manager services claim the ports that NixOS system services hold" {
		t.Errorf("NAME: %q", name)
	}
	// The description is kong's, reflowed.
	desc := strings.Join(strings.Fields(manSection(t, text, "DESCRIPTION")), " ")
	if want := strings.Join(strings.Fields(description), " "); desc != want {
		t.Errorf("DESCRIPTION:\n%s\nwant kong's:\n%s", desc, want)
	}
	// Flags and paths print with plain ASCII minus signs: a reader copies them.
	if strings.ContainsAny(text, "\u2010\u2212") {
		t.Errorf("the page has Unicode hyphens or minus signs where a command line needs -")
	}
}

func TestManPageExitStatus(t *testing.T) {
	text := renderMan(t, genMan(t))
	exit := strings.Join(strings.Fields(manSection(t, text, "EXIT STATUS")), " ")
	last := -1
	for code := 0; code <= 3; code++ {
		var meaning string
		for _, e := range ExitCodes {
			if e.Code == code {
				meaning = e.Meaning
			}
		}
		if meaning == "" {
			t.Fatalf("ExitCodes has no %d", code)
		}
		i := strings.Index(exit, strconv.Itoa(code)+" "+strings.Join(strings.Fields(meaning), " "))
		if i < 0 || i < last {
			t.Errorf("EXIT STATUS does not list %d (%q) in order:\n%s", code, meaning, exit)
		}
		last = i
	}
}

// Every exit* constant of the package has its meaning in ExitCodes, once:
// a new code cannot reach users without the man page saying what it means.
func TestEveryExitCodeIsInTheTable(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]int{}
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if !strings.HasPrefix(n.Name, "exit") {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.INT {
						t.Fatalf("%s: %s is no integer literal; teach this test to read it", file, n.Name)
					}
					consts[n.Name], _ = strconv.Atoi(lit.Value)
				}
			}
		}
	}
	if len(consts) < 4 {
		t.Fatalf("found %v: the exit codes moved", consts)
	}
	seen := map[int]int{}
	for _, e := range ExitCodes {
		seen[e.Code]++
	}
	for name, code := range consts {
		if seen[code] != 1 {
			t.Errorf("%s = %d is in ExitCodes %d times, want once", name, code, seen[code])
		}
	}
	if len(ExitCodes) != len(consts) {
		t.Errorf("ExitCodes has %d entries for %d constants", len(ExitCodes), len(consts))
	}
}

func TestManPageDocumentsEveryCommandAndFlag(t *testing.T) {
	page := genMan(t)
	text := renderMan(t, page)
	commands := manSection(t, text, "COMMANDS")
	for _, c := range modelCommands(t) {
		_, sub, ok := strings.Cut(commands, "\n   portclaim "+c.name+"\n")
		if !ok {
			t.Errorf("COMMANDS has no portclaim %s", c.name)
			continue
		}
		if i := strings.Index(sub, "\n   portclaim "); i >= 0 {
			sub = sub[:i]
		}
		for _, f := range c.flags {
			if f == "--help" || f == "--version" {
				continue // under OPTIONS, for every command
			}
			if !regexp.MustCompile(`(?m)^ {7}(-., )?` + regexp.QuoteMeta(f) + `\b`).MatchString(sub) {
				t.Errorf("portclaim %s: %s is not documented:\n%s", c.name, f, sub)
			}
		}
	}
	options := manSection(t, text, "OPTIONS")
	for _, f := range []string{"--help", "--version"} {
		if !strings.Contains(options, f) {
			t.Errorf("OPTIONS lacks %s", f)
		}
	}
	if strings.Contains(commands, "portclaim broker") {
		t.Errorf("the hidden broker command is documented")
	}
	// Defaults and choices as kong knows them.
	check := strings.Join(strings.Fields(commands), " ")
	for _, want := range []string{"The longest the whole check may take. Default: 30s.", "One of: bash, zsh, fish."} {
		if !strings.Contains(check, want) {
			t.Errorf("COMMANDS does not say %q", want)
		}
	}
}

func TestManPageFilesAndEnvironment(t *testing.T) {
	text := renderMan(t, genMan(t))
	files := manSection(t, text, "FILES")
	for _, f := range []string{"/etc/portclaim/policy.json", "/run/portclaim/broker.sock", "/var/lib/portclaim/claims",
		"$XDG_CONFIG_HOME/portclaim/manifest.json", "$XDG_STATE_HOME/portclaim/last-run.json"} {
		if !strings.Contains(files, "\n       "+f+"\n") {
			t.Errorf("FILES lacks %s:\n%s", f, files)
		}
	}
	env := manSection(t, text, "ENVIRONMENT")
	for _, v := range []string{"NO_COLOR", "XDG_CONFIG_HOME", "XDG_STATE_HOME"} {
		if !strings.Contains(env, "\n       "+v+"\n") {
			t.Errorf("ENVIRONMENT lacks %s:\n%s", v, env)
		}
	}
	// The activation turns these into flags; the binary never reads them.
	for _, v := range []string{"DRY_RUN", "VERBOSE"} {
		if strings.Contains(text, v) {
			t.Errorf("the page mentions %s, which portclaim does not read", v)
		}
	}
}
