package main

// How portclaim speaks. Every command follows these rules; this file and
// package report hold the code that does.
//
//   - Results go to standard output; errors, warnings, notes and progress
//     to standard error, each line "portclaim: error: ...", "portclaim:
//     warning: ...", "portclaim: note: ...", and an error's next step on
//     its own "portclaim: hint: ..." line.
//   - Quiet when there is nothing to say (resolve and release in a
//     switch); --verbose says that too. Progress only at a terminal.
//   - One thing per line. A conflict is a heading, then indented lines:
//     what holds the port, what wants it, "fix: " and why, then each way
//     on its own line (alternatives begin "or "), the Nix line or the
//     command last. Lines stay within report.Width (100) columns where
//     the content allows; a Nix line or a command is never broken but
//     gets a line of its own. Nothing is said twice.
//   - A label says only what is true now: [resolvable] only where
//     `portclaim resolve`, run now, acts; otherwise who can act.
//     Counts and labels come from the plan's one classification.
//   - Root reads a user's report in the third person ("alice's"), a user
//     their own in the second ("your").
//   - A hint works when followed: it names real users, existing options
//     and the command's own help.
//   - Text a user controls reaches a terminal only through
//     host.Printable.
//   - Colours are home-manager's, at a terminal only (below).

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/portclaim/portclaim/pkg/host"
)

// Colours as home-manager's own messages have them (lib/bash/
// home-manager.sh, setupColors: errorEcho bold red, warnEcho yellow,
// noteEcho bold cyan), on a terminal, and as it does, not when NO_COLOR
// is set at all (even empty) or the terminal cannot show colours
// (TERM=dumb or unset).
const (
	errorColor = "\033[1;31m"
	warnColor  = "\033[33m"
	noteColor  = "\033[1;36m"
	noColor    = "\033[0m"
)

// colours reports whether stderr gets colours.
func (a *app) colours() bool {
	if !a.stderrTTY {
		return false
	}
	if a.lookupEnv != nil {
		if _, set := a.lookupEnv("NO_COLOR"); set {
			return false
		}
	} else if a.getenv("NO_COLOR") != "" {
		return false
	}
	term := a.getenv("TERM")
	return term != "" && term != "dumb"
}

func (a *app) colour(c, s string) string {
	if !a.colours() {
		return s
	}
	return c + s + noColor
}

// errorf says what went wrong and, on its own line, what to do next:
// "portclaim: error: ..." then "portclaim: hint: ...".
func (a *app) errorf(msg, hint string) {
	fmt.Fprintln(a.stderr, a.colour(errorColor, "portclaim: error: ")+printable(msg))
	if hint != "" {
		fmt.Fprintln(a.stderr, "portclaim: hint: "+printable(hint))
	}
}

// printable keeps the lines of a message and nothing else a terminal
// would act on: messages quote paths, names and records users control.
func printable(msg string) string {
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		lines[i] = host.Printable(l)
	}
	return strings.Join(lines, "\n")
}

// warnf is something the user should act on that did not stop the run.
func (a *app) warnf(format string, args ...any) {
	fmt.Fprintln(a.stderr, a.colour(warnColor, "portclaim: warning: ")+printable(fmt.Sprintf(format, args...)))
}

// notef explains a partial view, or what the built-in map stands in for.
func (a *app) notef(format string, args ...any) {
	fmt.Fprintln(a.stderr, a.colour(noteColor, "portclaim: note: ")+printable(fmt.Sprintf(format, args...)))
}

// progress tells a person at a terminal what portclaim waits for; a
// switch in a journal gets the outcome, not the wait.
func (a *app) progress(format string, args ...any) {
	if a.stderrTTY {
		fmt.Fprintln(a.stderr, "portclaim: "+fmt.Sprintf(format, args...))
	}
}

// ask puts a yes/no question to a person at a terminal; "no" unless
// they answer yes. The answer (or its absence) ends the line.
func (a *app) ask(in *bufio.Reader, question string) bool {
	fmt.Fprintf(a.stderr, "%s [y/N] ", question)
	answer, err := in.ReadString('\n')
	if err != nil {
		fmt.Fprintln(a.stderr) // end of input: end the prompt's line
	}
	answer = strings.ToLower(strings.TrimSpace(answer))
	return answer == "y" || answer == "yes"
}
