package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/alecthomas/kong"

	"github.com/portclaim/portclaim/pkg/lastrun"
	"github.com/portclaim/portclaim/pkg/policy"
)

// manCmd prints portclaim(1). Commands, flags, help and defaults come from
// the parser's model and the exit statuses from ExitCodes, so the page
// says what the binary it came with does.
type manCmd struct{}

func (manCmd) Run(a *app, k *kong.Context) error {
	_, err := io.WriteString(a.stdout, manPage(k.Model))
	return err
}

// manEntry is a term and what it means, for the FILES and ENVIRONMENT
// lists.
type manEntry struct{ term, text string }

// The paths come from the packages that use them where they are constants.
var manFiles = []manEntry{
	{policy.Path, "The system's yield policy, written by the NixOS module: which system units may yield to which users, and where claims live (claimsDir)."},
	{policy.BrokerSocket, "The root broker's socket, opened by systemd's portclaim.socket. resolve and release ask the broker to stop and start system units for you."},
	{policy.DefaultClaimsDir, "Claims, unless the policy's claimsDir says otherwise: claimsDir/USER/UNIT for each system unit that yields to USER. While it exists, the unit's start condition keeps the unit down, across reboots too."},
	{"$XDG_CONFIG_HOME/portclaim/manifest.json", "Your claims, linked there by the home-manager module (default ~/.config/portclaim/manifest.json). Without it, the built-in map of known services stands in. --manifest names another."},
	{"$XDG_STATE_HOME/portclaim/" + lastrun.File, "The outcome of your last resolve or release, which status shows (default ~/.local/state/portclaim/" + lastrun.File + ")."},
	{lastrun.RootDir + "/USER.json", "The outcome of root's last resolve or release for USER (root's, never in USER's home); status shows the newer of this and USER's own."},
}

// manEnvironment is what the binary reads from its environment. The
// home-manager activation's DRY_RUN and VERBOSE are not among them: it
// turns them into --dry-run and --verbose.
var manEnvironment = []manEntry{
	{"NO_COLOR", "When set, even empty, messages on a terminal are not coloured (home-manager's colours otherwise: errors bold red, warnings yellow, notes bold cyan)."},
	{"TERM", "When unset or dumb, messages are not coloured."},
	{"SOURCE_DATE_EPOCH", "When this man page is generated, its date (unless the build stamped the source's date)."},
	{"XDG_CONFIG_HOME", "Where your manifest is looked for, when an absolute path; else $HOME/.config. Root and root acting for a user use the user's home instead."},
	{"XDG_STATE_HOME", "Where the last run's outcome is kept, when an absolute path; else $HOME/.local/state."},
	{"XDG_RUNTIME_DIR", "Where your user manager's bus is found ($XDG_RUNTIME_DIR/bus); else /run/user/UID/bus. Root ignores it: for itself it uses /run/user/0/bus, and acting for a user, that user's manager's private socket, /run/user/UID/systemd/private."},
}

var manSeeAlso = []string{"systemctl(1)", "journalctl(1)", "home-manager(1)", "configuration.nix(5)", "home-configuration.nix(5)"}

// manDate is the page's date: the same whenever the same source builds
// it, never the clock's. The Nix build stamps the flake's last commit
// (-X main.date=YYYYMMDD); else SOURCE_DATE_EPOCH, as reproducible
// builds set it; else the commit time go build records from git; else
// none.
func manDate(getenv func(string) string) string {
	if len(date) == 8 {
		return date[:4] + "-" + date[4:6] + "-" + date[6:]
	}
	if epoch, err := strconv.ParseInt(getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
		return time.Unix(epoch, 0).UTC().Format(time.DateOnly)
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.time" {
				if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
					return t.UTC().Format(time.DateOnly)
				}
			}
		}
	}
	return ""
}

func manPage(app *kong.Application) string {
	var m roff
	ver := version
	if ver == "" {
		ver = "devel"
	}
	m.macro("TH", "PORTCLAIM", "1", manDate(os.Getenv), "portclaim "+ver, "User Commands")
	// No hyphenation, ragged right: a flag, a path or claimsDir broken at
	// a line's end with a hyphen that is not in it misleads whoever types
	// it.
	m.macro("nh")
	m.macro("ad", "l")

	paras := paragraphs(app.Help)
	m.macro("SH", "NAME")
	summary := ""
	if len(paras) > 0 {
		summary = strings.TrimSuffix(paras[0], ".")
		r, size := utf8.DecodeRuneInString(summary)
		summary = string(unicode.ToLower(r)) + summary[size:]
	}
	m.text(roffEscape(app.Name) + ` \- ` + roffEscape(summary))

	m.macro("SH", "SYNOPSIS")
	var lines []string
	var synopsis func(n *kong.Node)
	synopsis = func(n *kong.Node) {
		for _, c := range visibleCommands(n) {
			lines = append(lines, manSynopsis(app, c))
			synopsis(c)
		}
	}
	lines = append(lines, bold(app.Name)+` [\fIflags\fR] \fIcommand\fR`)
	synopsis(app.Node)
	for i, l := range lines {
		if i > 0 {
			m.macro("br")
		}
		m.text(l)
	}

	m.macro("SH", "DESCRIPTION")
	for i, p := range paras {
		if i > 0 {
			m.macro("PP")
		}
		m.text(roffEscape(p))
	}

	if flags := visibleFlags(app.Node); len(flags) > 0 {
		m.macro("SH", "OPTIONS")
		m.text("Every command takes these.")
		for _, f := range flags {
			manFlag(&m, f)
		}
	}

	m.macro("SH", "COMMANDS")
	var commands func(n *kong.Node)
	commands = func(n *kong.Node) {
		for _, c := range visibleCommands(n) {
			m.macro("SS", app.Name+" "+c.Path())
			m.text(roffEscape(c.Help))
			if c.Detail != "" {
				m.macro("PP")
				m.text(roffEscape(c.Detail))
			}
			for _, p := range c.Positional {
				m.macro("TP")
				m.text(`\fI` + roffEscape(strings.ToUpper(p.Name)) + `\fR`)
				m.text(roffEscape(valueHelp(p)))
			}
			for _, f := range visibleFlags(c) {
				manFlag(&m, f)
			}
			commands(c)
		}
	}
	commands(app.Node)

	m.macro("SH", "EXIT STATUS")
	for _, e := range ExitCodes {
		m.macro("TP")
		m.text(bold(fmt.Sprint(e.Code)))
		m.text(roffEscape(e.Meaning))
	}

	m.macro("SH", "FILES")
	for _, f := range manFiles {
		m.macro("TP")
		m.text(`\fI` + roffEscape(f.term) + `\fR`)
		m.text(roffEscape(f.text))
	}

	m.macro("SH", "ENVIRONMENT")
	for _, e := range manEnvironment {
		m.macro("TP")
		m.text(bold(e.term))
		m.text(roffEscape(e.text))
	}

	m.macro("SH", "SEE ALSO")
	for i, s := range manSeeAlso {
		name, section, _ := strings.Cut(strings.TrimSuffix(s, ")"), "(")
		sep := ","
		if i == len(manSeeAlso)-1 {
			sep = ""
		}
		m.macro("BR", name, "("+section+")"+sep)
	}
	return m.String()
}

// manSynopsis is one command's line: its name, [flags] when it has any of
// its own, and its arguments.
func manSynopsis(app *kong.Application, c *kong.Node) string {
	s := bold(app.Name + " " + c.Path())
	if len(visibleFlags(c)) > 0 {
		s += ` [\fIflags\fR]`
	}
	if len(visibleCommands(c)) > 0 {
		s += ` \fIcommand\fR`
	}
	for _, p := range c.Positional {
		arg := `\fI` + roffEscape(strings.ToUpper(p.Name)) + `\fR`
		if !p.Required {
			arg = "[" + arg + "]"
		}
		s += " " + arg
	}
	return s
}

func manFlag(m *roff, f *kong.Flag) {
	long, short := flagNames(f)
	var names []string
	for _, s := range short {
		names = append(names, bold("-"+s))
	}
	for _, l := range long {
		names = append(names, bold("--"+l))
	}
	term := strings.Join(names, ", ")
	if takesValue(f) {
		term += `=\fI` + roffEscape(placeholder(f)) + `\fR`
	}
	m.macro("TP")
	m.text(term)
	m.text(roffEscape(valueHelp(f.Value)))
}

// valueHelp is the help, with what kong knows besides: the choices and the
// default.
func valueHelp(v *kong.Value) string {
	h := oneLine(v.Help)
	if v.Enum != "" {
		h += " One of: " + strings.Join(v.EnumSlice(), ", ") + "."
	}
	if v.HasDefault && v.Default != "" {
		h += " Default: " + v.Default + "."
	}
	return h
}

// paragraphs splits text at blank lines, each paragraph on one line: roff
// fills the lines itself.
func paragraphs(s string) []string {
	var out []string
	for _, p := range strings.Split(strings.TrimSpace(s), "\n\n") {
		if p = oneLine(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func bold(s string) string { return `\fB` + roffEscape(s) + `\fR` }

// roffEscape makes text print as itself: a backslash starts an escape,
// and "-" is a hyphen roff may render as one (U+2010), where a reader
// copying a flag or a path needs a minus.
func roffEscape(s string) string {
	return strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
}

// roff builds the page: requests on their own lines, text lines guarded
// against being read as requests.
type roff struct{ strings.Builder }

// macro writes a request; its arguments are quoted where they hold spaces
// (a quote inside is doubled, as groff reads it).
func (r *roff) macro(name string, args ...string) {
	r.WriteString("." + name)
	for _, a := range args {
		a = roffEscape(a)
		if a == "" || strings.ContainsAny(a, ` "`) {
			a = `"` + strings.ReplaceAll(a, `"`, `""`) + `"`
		}
		r.WriteString(" " + a)
	}
	r.WriteString("\n")
}

// text writes a text line; \& keeps a leading . or ' from making it a
// request.
func (r *roff) text(s string) {
	if s == "" {
		return // an empty line would be a paragraph break
	}
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	r.WriteString(s + "\n")
}
