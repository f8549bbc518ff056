package main

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/portclaim/portclaim/pkg/host"
)

// Colours as home-manager's own messages have them (errorEcho, warnEcho,
// noteEcho: bold red, yellow, blue), on a terminal, unless NO_COLOR.
const (
	errorColor = "\033[1;31m"
	warnColor  = "\033[1;33m"
	noteColor  = "\033[1;34m"
	noColor    = "\033[0m"
)

func (a *app) colour(c, s string) string {
	if !a.stderrTTY || a.getenv("NO_COLOR") != "" {
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
