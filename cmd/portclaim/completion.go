package main

import (
	"fmt"
	"strings"

	"github.com/alecthomas/kong"
)

// completionCmd prints a shell's completion script. The scripts are
// generated from the parser's own model each time, so a new command or
// flag is completed as soon as it exists, and a removed one no longer is.
type completionCmd struct {
	// An enum, so that kong itself refuses any other shell (exit 2, naming
	// the three) and the scripts can offer the three names.
	Shell string `arg:"" enum:"bash,zsh,fish" help:"The shell: bash, zsh or fish."`
}

func (c *completionCmd) Run(a *app, k *kong.Context) error {
	root := completionTree(k.Model)
	var script string
	switch c.Shell {
	case "bash":
		script = bashCompletion(root)
	case "zsh":
		script = zshCompletion(root)
	default: // fish: kong's enum admits no other shell
		script = fishCompletion(root)
	}
	_, err := fmt.Fprint(a.stdout, script)
	return err
}

// What a flag's value or a positional argument completes to.
type valueKind int

const (
	valueFree  valueKind = iota // anything: nothing to suggest (a port, a duration)
	valueEnum                   // one of the values kong knows
	valueFiles                  // a path
	valueUsers                  // a user name
)

type compValue struct {
	name string // the placeholder: FILE, NAME, PORT
	kind valueKind
	enum []string
}

type compFlag struct {
	long  []string // without "--": the name, its aliases, its negation
	short []string // without "-"
	help  string
	value *compValue // nil: the flag takes no value (a switch or a counter)
}

// compNode is a command, or the application itself (path empty), as the
// completion scripts need it: the flags include those inherited from its
// parents, since kong accepts them after the command too.
type compNode struct {
	path     []string
	help     string
	flags    []compFlag
	args     []compValue
	children []*compNode
}

func (n *compNode) key() string { return strings.Join(n.path, " ") }

// walk calls f on n and every command under it, parents first.
func (n *compNode) walk(f func(*compNode)) {
	f(n)
	for _, c := range n.children {
		c.walk(f)
	}
}

// visibleCommands are the commands a user is meant to find: hidden ones
// (the broker, started by systemd) stay out of completions and the man
// page. Argument nodes (kong's branching positionals) are no commands;
// portclaim has none.
func visibleCommands(n *kong.Node) []*kong.Node {
	var out []*kong.Node
	for _, c := range n.Children {
		if c.Type == kong.CommandNode && !c.Hidden {
			out = append(out, c)
		}
	}
	return out
}

func visibleFlags(n *kong.Node) []*kong.Flag {
	var out []*kong.Flag
	for _, f := range n.Flags {
		if !f.Hidden {
			out = append(out, f)
		}
	}
	return out
}

// flagNames are all the spellings kong accepts for f.
func flagNames(f *kong.Flag) (long, short []string) {
	long = append(long, f.Name)
	if f.Short != 0 {
		short = append(short, string(f.Short))
	}
	for _, a := range f.Aliases {
		// kong reads a one-letter alias as a short flag.
		if len([]rune(a)) == 1 {
			short = append(short, a)
		} else {
			long = append(long, a)
		}
	}
	switch f.Tag.Negatable {
	case "":
	case "_": // kong's mark for the default negation, --no-<name>
		long = append(long, "no-"+f.Name)
	default:
		long = append(long, f.Tag.Negatable)
	}
	return long, short
}

// takesValue: switches and counters are given alone.
func takesValue(f *kong.Flag) bool { return !f.IsBool() && !f.IsCounter() }

// placeholder names a flag's value. kong's help shows the default there
// (--timeout=30s, --format="text"); the man page and zsh say the default
// apart, so a default gives way to the choices or the flag's name.
func placeholder(f *kong.Flag) string {
	switch {
	case f.PlaceHolder != "":
		return f.PlaceHolder
	case f.Enum != "":
		return strings.Join(f.EnumSlice(), "|")
	case f.HasDefault:
		return strings.ToUpper(f.Name)
	}
	return f.FormatPlaceHolder()
}

func describeValue(v *kong.Value, name string) compValue {
	cv := compValue{name: name}
	switch {
	case v.Enum != "":
		cv.kind, cv.enum = valueEnum, v.EnumSlice()
	case v.Tag.Type == "path" || v.Tag.Type == "existingfile" || v.Tag.Type == "filecontent":
		cv.kind = valueFiles
	case v.Flag != nil && v.Flag.Name == "user":
		// --user takes a login name on every command that has it; the
		// model cannot say so, so the name decides.
		cv.kind = valueUsers
	}
	return cv
}

func completionTree(app *kong.Application) *compNode {
	return compTreeNode(app.Node, nil, nil)
}

func compTreeNode(n *kong.Node, path []string, inherited []compFlag) *compNode {
	c := &compNode{path: path, help: oneLine(n.Help)}
	c.flags = append(c.flags, inherited...)
	for _, f := range visibleFlags(n) {
		long, short := flagNames(f)
		cf := compFlag{long: long, short: short, help: oneLine(f.Help)}
		if takesValue(f) {
			v := describeValue(f.Value, placeholder(f))
			cf.value = &v
		}
		c.flags = append(c.flags, cf)
	}
	for _, p := range n.Positional {
		c.args = append(c.args, describeValue(p, strings.ToUpper(p.Name)))
	}
	for _, child := range visibleCommands(n) {
		// A fresh slice each: children must not share c.flags' array.
		p := append(append([]string{}, path...), child.Name)
		c.children = append(c.children, compTreeNode(child, p, c.flags))
	}
	return c
}

// oneLine collapses help to one line: every shell shows a description on
// one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// shq quotes s for bash, zsh and fish alike: single quotes, with a single
// quote written as '\” (which fish, too, reads as a quote).
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// fishq quotes s for fish, whose single quotes keep \\ and \' as escapes.
func fishq(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func (f compFlag) dashed() []string {
	var out []string
	for _, l := range f.long {
		out = append(out, "--"+l)
	}
	for _, s := range f.short {
		out = append(out, "-"+s)
	}
	return out
}
