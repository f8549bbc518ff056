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

// ---- bash ----

// The bash script needs nothing but bash itself (no bash-completion
// helpers), so it also works where only `source <(portclaim completion
// bash)` loaded it.
const bashMain = `
_portclaim() {
    local cur=${COMP_WORDS[COMP_CWORD]} path= w flag= npos=0 ddash= i=1
    local __pc_subs __pc_flags __pc_valued
    COMPREPLY=()
    __portclaim_node ''
    # Walk the words before the cursor: commands descend, a flag that takes
    # a value skips it ("--flag value", or "--flag=value", which bash splits
    # at the "="), anything else is a positional argument.
    while (( i < COMP_CWORD )); do
        w=${COMP_WORDS[i]}
        if [[ -z $ddash && $w == -- ]]; then
            ddash=1
        elif [[ -z $ddash && $w == -?* ]]; then
            if [[ ${COMP_WORDS[i+1]} == = ]]; then
                (( i += 2 ))
            elif [[ $__pc_valued == *" $w "* ]]; then
                (( i += 1 ))
            fi
        elif (( npos == 0 )) && [[ " $__pc_subs " == *" $w "* ]]; then
            path=${path:+$path }$w
            __portclaim_node "$path"
        else
            (( npos += 1 ))
        fi
        (( i += 1 ))
    done
    local prev=
    (( COMP_CWORD > 0 )) && prev=${COMP_WORDS[COMP_CWORD-1]}
    if [[ -z $ddash ]]; then
        if [[ $cur == = && $prev == -?* ]]; then
            flag=$prev cur=
        elif [[ $prev == = ]] && (( COMP_CWORD > 1 )); then
            flag=${COMP_WORDS[COMP_CWORD-2]}
        elif [[ $__pc_valued == *" $prev "* ]]; then
            flag=$prev
        fi
    fi
    if [[ -n $flag ]]; then
        __portclaim_value "$path|$flag" "$cur"
    elif [[ -z $ddash && $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$__pc_flags" -- "$cur")
    elif (( npos == 0 )) && [[ -n $__pc_subs ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$__pc_subs" -- "$cur")
    else
        __portclaim_value "$path|#$(( npos + 1 ))" "$cur"
    fi
    return 0
}

complete -F _portclaim portclaim
`

func bashCompletion(root *compNode) string {
	var b strings.Builder
	b.WriteString("# bash completion for portclaim. Generated by `portclaim completion bash`\n")
	b.WriteString("# from the CLI's own model: regenerate it, do not edit it.\n\n")

	b.WriteString("# __portclaim_node PATH: the subcommands, flags and value-taking flags\n")
	b.WriteString("# of the command at PATH ('' for portclaim itself).\n")
	b.WriteString("__portclaim_node() {\n    case $1 in\n")
	root.walk(func(n *compNode) {
		var subs, flags, valued []string
		for _, c := range n.children {
			subs = append(subs, c.path[len(c.path)-1])
		}
		for _, f := range n.flags {
			flags = append(flags, f.dashed()...)
			if f.value != nil {
				valued = append(valued, f.dashed()...)
			}
		}
		fmt.Fprintf(&b, "    %s)\n        __pc_subs=%s\n        __pc_flags=%s\n        __pc_valued=%s\n        ;;\n",
			shq(n.key()), shq(strings.Join(subs, " ")), shq(strings.Join(flags, " ")), shq(" "+strings.Join(valued, " ")+" "))
	})
	b.WriteString("    *)\n        __pc_subs= __pc_flags= __pc_valued=' '\n        ;;\n    esac\n}\n\n")

	b.WriteString("# __portclaim_value 'PATH|--flag' CUR, or 'PATH|#N' CUR for the Nth\n")
	b.WriteString("# argument: the values that fit there.\n")
	b.WriteString("__portclaim_value() {\n    case $1 in\n")
	root.walk(func(n *compNode) {
		for _, f := range n.flags {
			if f.value == nil || f.value.kind == valueFree {
				continue
			}
			var keys []string
			for _, d := range f.dashed() {
				keys = append(keys, shq(n.key()+"|"+d))
			}
			fmt.Fprintf(&b, "    %s)\n        %s\n        ;;\n", strings.Join(keys, "|"), bashValue(*f.value))
		}
		for i, a := range n.args {
			if a.kind == valueFree {
				continue
			}
			fmt.Fprintf(&b, "    %s)\n        %s\n        ;;\n", shq(fmt.Sprintf("%s|#%d", n.key(), i+1)), bashValue(a))
		}
	})
	b.WriteString("    esac\n}\n")
	b.WriteString(bashMain)
	return b.String()
}

func bashValue(v compValue) string {
	switch v.kind {
	case valueEnum:
		return fmt.Sprintf(`mapfile -t COMPREPLY < <(compgen -W %s -- "$2")`, shq(strings.Join(v.enum, " ")))
	case valueFiles:
		return `compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -f -- "$2")`
	case valueUsers:
		return `mapfile -t COMPREPLY < <(compgen -u -- "$2")`
	}
	return "COMPREPLY=()"
}

// ---- zsh ----

func zshCompletion(root *compNode) string {
	var b strings.Builder
	b.WriteString("#compdef portclaim\n")
	b.WriteString("# zsh completion for portclaim. Generated by `portclaim completion zsh`\n")
	b.WriteString("# from the CLI's own model: regenerate it, do not edit it.\n\n")
	root.walk(func(n *compNode) { zshNode(&b, n) })
	// Autoloaded from fpath, the file is _portclaim's body: complete. Sourced
	// (source <(portclaim completion zsh)), it registers the function.
	b.WriteString(`if [[ $funcstack[1] == _portclaim ]]; then
    _portclaim "$@"
else
    compdef _portclaim portclaim
fi
`)
	return b.String()
}

func zshFunc(n *compNode) string {
	name := "_portclaim"
	for _, p := range n.path {
		name += "_" + strings.ReplaceAll(p, "-", "_")
	}
	return name
}

func zshNode(b *strings.Builder, n *compNode) {
	fmt.Fprintf(b, "%s() {\n", zshFunc(n))
	if len(n.children) > 0 {
		b.WriteString("    local curcontext=$curcontext state state_descr line ret=1\n    typeset -A opt_args\n")
		b.WriteString("    _arguments -C -s -S \\\n")
	} else {
		b.WriteString("    _arguments -s -S \\\n")
	}
	for _, f := range n.flags {
		names := f.dashed()
		exclude := ""
		if len(names) > 1 {
			exclude = "(" + strings.Join(names, " ") + ")"
		}
		value := ""
		if f.value != nil {
			value = ":" + zshEscape(f.value.name) + ":" + zshAction(*f.value)
		}
		for _, name := range names {
			eq := ""
			if f.value != nil && strings.HasPrefix(name, "--") {
				eq = "=" // both --flag=value and --flag value
			}
			fmt.Fprintf(b, "        %s \\\n", shq(exclude+name+eq+"["+zshEscape(f.help)+"]"+value))
		}
	}
	if len(n.children) > 0 {
		b.WriteString("        ': :->command' \\\n        '*:: :->args' && ret=0\n")
		b.WriteString("    case $state in\n    command)\n        local -a commands=(\n")
		for _, c := range n.children {
			name := c.path[len(c.path)-1]
			fmt.Fprintf(b, "            %s\n", shq(strings.ReplaceAll(name, ":", `\:`)+":"+c.help))
		}
		b.WriteString("        )\n        _describe -t commands 'portclaim command' commands && ret=0\n        ;;\n")
		b.WriteString("    args)\n        case $words[1] in\n")
		for _, c := range n.children {
			fmt.Fprintf(b, "        %s) %s && ret=0 ;;\n", shq(c.path[len(c.path)-1]), zshFunc(c))
		}
		b.WriteString("        esac\n        ;;\n    esac\n    return ret\n}\n\n")
		return
	}
	for _, a := range n.args {
		fmt.Fprintf(b, "        %s \\\n", shq(":"+zshEscape(a.name)+":"+zshAction(a)))
	}
	b.WriteString("        && return 0\n    return 1\n}\n\n")
}

// zshEscape makes text safe inside an _arguments spec, where ] ends a
// description and : separates fields.
func zshEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "[", `\[`, "]", `\]`, ":", `\:`).Replace(s)
}

func zshAction(v compValue) string {
	switch v.kind {
	case valueEnum:
		return "(" + strings.Join(v.enum, " ") + ")"
	case valueFiles:
		return "_files"
	case valueUsers:
		return "_users"
	}
	return " " // a message, and nothing to complete
}

// ---- fish ----

func fishCompletion(root *compNode) string {
	var b strings.Builder
	b.WriteString("# fish completion for portclaim. Generated by `portclaim completion fish`\n")
	b.WriteString("# from the CLI's own model: regenerate it, do not edit it.\n\n")

	b.WriteString("# __portclaim_subs PATH, __portclaim_valued PATH: the subcommands, and the\n")
	b.WriteString("# flags that take a value, of the command at PATH ('' for portclaim).\n")
	for _, which := range []string{"subs", "valued"} {
		fmt.Fprintf(&b, "function __portclaim_%s\n    switch $argv[1]\n", which)
		root.walk(func(n *compNode) {
			var words []string
			if which == "subs" {
				for _, c := range n.children {
					words = append(words, c.path[len(c.path)-1])
				}
			} else {
				for _, f := range n.flags {
					if f.value != nil {
						words = append(words, f.dashed()...)
					}
				}
			}
			if len(words) == 0 {
				return
			}
			quoted := make([]string, len(words))
			for i, w := range words {
				quoted[i] = fishq(w)
			}
			fmt.Fprintf(&b, "        case %s\n            printf '%%s\\n' %s\n", fishq(n.key()), strings.Join(quoted, " "))
		})
		b.WriteString("    end\nend\n\n")
	}
	b.WriteString(`# __portclaim_at PATH [N]: the cursor is in the command at PATH (and, with
# N, at its Nth argument). Flags, and the values of those that take one,
# are skipped.
function __portclaim_at
    set -l path ''
    set -l npos 0
    set -l skip 0
    set -l ddash 0
    for w in (commandline -opc)[2..-1]
        if test $skip = 1
            set skip 0
        else if test $ddash = 0 -a "$w" = --
            set ddash 1
        else if test $ddash = 0; and string match -q -- '-?*' $w
            if not string match -q -- '*=*' $w; and contains -- $w (__portclaim_valued $path)
                set skip 1
            end
        else if test $npos = 0; and contains -- $w (__portclaim_subs $path)
            set path (string join ' ' -- (string split -n ' ' -- $path) $w)
        else
            set npos (math $npos + 1)
        end
    end
    test "$path" = "$argv[1]"; or return 1
    if set -q argv[2]
        test (math $npos + 1) = $argv[2]
    end
end

# No file names unless a flag or an argument takes a path.
complete -c portclaim -f
`)
	root.walk(func(n *compNode) {
		fmt.Fprintf(&b, "\n# %s\n", strings.TrimSpace("portclaim "+n.key()))
		at := "__portclaim_at " + fishq(n.key())
		for _, c := range n.children {
			fmt.Fprintf(&b, "complete -c portclaim -n %s -a %s -d %s\n", fishq(at+" 1"),
				fishq(c.path[len(c.path)-1]), fishq(c.help))
		}
		for _, f := range n.flags {
			var spec []string
			for _, l := range f.long {
				spec = append(spec, "-l "+fishq(l))
			}
			for _, s := range f.short {
				spec = append(spec, "-s "+fishq(s))
			}
			if f.value != nil {
				spec = append(spec, fishValue(*f.value, true))
			}
			fmt.Fprintf(&b, "complete -c portclaim -n %s %s -d %s\n", fishq(at), strings.Join(spec, " "), fishq(f.help))
		}
		for i, a := range n.args {
			if a.kind == valueFree {
				continue // nothing to suggest, and -f above keeps file names away
			}
			fmt.Fprintf(&b, "complete -c portclaim -n %s %s\n", fishq(fmt.Sprintf("%s %d", at, i+1)), fishValue(a, false))
		}
	})
	return b.String()
}

// fishValue is what a value completes to: -a, what it lists; -F, file
// names. Of a flag (ofFlag) it also says that the flag takes a value: -r
// for a path, else -x, only what -a lists (nothing, for a free value such
// as a port). A positional argument has no flag to require a value of.
func fishValue(v compValue, ofFlag bool) string {
	var what string
	switch v.kind {
	case valueEnum:
		what = "-a " + fishq(strings.Join(v.enum, " "))
	case valueFiles:
		what = "-F"
	case valueUsers:
		what = "-a '(__fish_complete_users)'"
	}
	switch {
	case !ofFlag:
		return what
	case v.kind == valueFiles:
		return "-r " + what
	}
	return strings.TrimSpace("-x " + what)
}
