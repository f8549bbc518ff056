// Command portclaim lets a user's home-manager services claim the ports
// that system services hold. This package wires the packages under pkg/
// together — read, decide, plan, act, report — and alone decides what is
// printed where and with which exit code.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/alecthomas/kong"
	"golang.org/x/sys/unix"

	"github.com/portclaim/portclaim/pkg/attribute"
	"github.com/portclaim/portclaim/pkg/places"
)

// Exit codes (README "Exit codes"): decided here, and only here. What
// each means is said once, in ExitCodes (exitcodes.go), which the man
// page shows.
const (
	exitOK        = 0
	exitConflicts = 1
	exitBadInput  = 2
	exitEnv       = 3
)

// Set by the Nix build: -X main.version=... -X main.commit=...
// -X main.date=YYYYMMDD (the source's date, for the man page).
var (
	version = ""
	commit  = ""
	date    = ""
)

type cli struct {
	Check     checkCmd     `cmd:"" help:"Report which claimed ports are held, by whom, and who can fix it how (exit 1 on conflicts)."`
	Resolve   resolveCmd   `cmd:"" help:"Check, then have the system units the policy lets yield to you stop and stay down (exit 0 unless strict)."`
	Release   releaseCmd   `cmd:"" help:"Give back the claims your manifest no longer declares (or --all); units that ran come back."`
	Status    statusCmd    `cmd:"" help:"Show the policy, the claims (root: everyone's) and who holds each claimed port now."`
	Who       whoCmd       `cmd:"" help:"Say who holds a port: PORT, PORT/tcp or PORT/udp (exit 1 when nothing does)."`
	Validate  validateCmd  `cmd:"" help:"Check a manifest file; print every problem with its JSON path (exit 2 if any)."`
	Version   versionCmd   `cmd:"" help:"Print the version."`
	Broker    brokerCmd    `cmd:"" hidden:"" help:"Serve users' requests as root (started by systemd's portclaim.socket)."`
	Reconcile reconcileCmd `cmd:"" help:"As root: give back claims the policy no longer allows, finish releases under way (run at boot and on policy changes)."`

	Completion completionCmd `cmd:"" help:"Print the completion script for bash, zsh or fish."`
	Man        manCmd        `cmd:"" help:"Print the man page (roff, section 1)."`

	Help helpCmd `cmd:"" help:"Show help for portclaim or one of its commands."`

	VersionFlag kong.VersionFlag `name:"version" help:"Print the version and exit."`

	machineFlags `embed:""`
}

// machineFlags say where portclaim reads the machine ("": gather.Default's
// place). Hidden: they exist so that the CLI's script tests can run
// unprivileged on fixtures (a socket table, a policy) instead of this
// machine. No kong defaults: every tag kong interpolates costs each run,
// a switch's included, a little of its start.
type machineFlags struct {
	ProcRoot     string `name:"proc-root" hidden:"" type:"path"`
	SysRoot      string `name:"sys-root" hidden:"" type:"path"`
	PolicyPath   string `name:"policy" hidden:"" type:"path"`
	BrokerSocket string `name:"broker-socket" hidden:"" type:"path"`
}

// A switch runs check, resolve or release once per activation, and
// building kong's model of the whole CLI (twelve commands, their flags and
// help texts, each interpolated) is most of such a run's start: 0.5 to 0.7
// ms more than a model of one command (`perf stat -r 800 portclaim check
// --manifest /nonexistent.json`: 3.93 → 3.41 ms). So a run whose first
// word is one of these three, and which asks for no help, is parsed
// against a model of that command alone; if that parse fails, the whole
// model parses again and speaks, so a person meets the same words either
// way (TestOneCommandModelsParseAsTheWhole).
type (
	checkOnly struct {
		Check        checkCmd `cmd:""`
		machineFlags `embed:""`
	}
	resolveOnly struct {
		Resolve      resolveCmd `cmd:""`
		machineFlags `embed:""`
	}
	releaseOnly struct {
		Release      releaseCmd `cmd:""`
		machineFlags `embed:""`
	}
)

// oneCommandModel returns the model of args' command alone and where its
// machine flags land, or nil when args need the whole CLI.
func oneCommandModel(args []string) (any, *machineFlags) {
	if len(args) == 0 {
		return nil, nil
	}
	for _, arg := range args[1:] {
		if arg == "--" {
			break
		}
		if arg == "-h" || arg == "--help" || strings.HasPrefix(arg, "--help=") {
			return nil, nil
		}
	}
	switch args[0] {
	case "check":
		m := &checkOnly{}
		return m, &m.machineFlags
	case "resolve":
		m := &resolveOnly{}
		return m, &m.machineFlags
	case "release":
		m := &releaseOnly{}
		return m, &m.machineFlags
	}
	return nil, nil
}

// helpCmd is `portclaim help [COMMAND]`, the same as --help.
type helpCmd struct {
	Command []string `arg:"" optional:"" help:"The command to explain."`
}

func (h *helpCmd) Run(a *app) error {
	parser, err := newParser(&cli{}, a)
	if err != nil {
		return err
	}
	if len(h.Command) > 0 && !slices.Contains(commandNames(parser), h.Command[0]) {
		return fail(exitBadInput, "commands: "+strings.Join(commandNames(parser), ", "), "help %s: no such command", h.Command[0])
	}
	_, err = parser.Parse(append(h.Command, "--help"))
	return err
}

// commandNames lists the commands a person may ask for help on.
func commandNames(k *kong.Kong) []string {
	var out []string
	for _, n := range k.Model.Children {
		if !n.Hidden {
			out = append(out, n.Name)
		}
	}
	return out
}

// helpHint is the hint after a mistake in args: the help of the command
// they name, else portclaim's.
func helpHint(args []string, a *app) string {
	if len(args) > 0 {
		if parser, err := newParser(&cli{}, a); err == nil && slices.Contains(commandNames(parser), args[0]) {
			return fmt.Sprintf("see `portclaim %s --help`", args[0])
		}
	}
	return "see `portclaim --help`"
}

// app is what every command gets: where to write, where to read the
// machine, and who runs it.
type app struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	places         places.Places
	names          attribute.Names // user names by uid, looked up once a run
	euid           int
	getenv         func(string) string
	lookupEnv      func(string) (string, bool) // nil: getenv alone

	// stdinTTY: a person can answer a prompt; stderrTTY: a person sees
	// progress (and colours, unless NO_COLOR).
	stdinTTY, stderrTTY bool
}

// exitError carries an exit code, and what to say on stderr.
type exitError struct {
	code int
	msg  string
	hint string
}

func (e *exitError) Error() string { return e.msg }

// fail is an error a person can act on: what is wrong, and the next step.
func fail(code int, hint, format string, args ...any) error {
	return &exitError{code: code, msg: fmt.Sprintf(format, args...), hint: hint}
}

// quietExit ends a command with code and nothing more to say.
func quietExit(code int) error {
	if code == exitOK {
		return nil
	}
	return &exitError{code: code}
}

func main() {
	a := &app{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin, places: places.Default,
		euid: os.Geteuid(), getenv: os.Getenv, lookupEnv: os.LookupEnv, stdinTTY: isTerminal(os.Stdin), stderrTTY: isTerminal(os.Stderr)}
	os.Exit(run(os.Args[1:], a))
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// parserExit is how kong's exit after --help or --version reaches run
// without ending the process (tests call run directly).
type parserExit int

// newParser builds the parser of a model (the whole cli, or one command
// of it); the completion and man page generators read the whole model.
func newParser(model any, a *app) (*kong.Kong, error) {
	return kong.New(model,
		kong.Name("portclaim"),
		kong.Description(description),
		kong.Writers(a.stdout, a.stderr),
		kong.Exit(func(code int) { panic(parserExit(code)) }),
		kong.Vars{"version": versionLine()},
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
}

const description = `Let home-manager services claim the ports that NixOS system services hold.

portclaim reads your claims (the manifest the home-manager module links to
$XDG_CONFIG_HOME/portclaim/manifest.json; without one, the built-in map of
known services), finds what holds each claimed port, and makes the system
units the administrator lets yield to you stop and stay down, through
portclaim's root broker. What it may not do, it names with the exact
configuration.nix or home.nix line, or the command that does it.`

// parse parses args against one command's model when it can (fast),
// else, or when that fails, against the whole CLI's.
func parse(args []string, a *app, fast bool) (*kong.Context, *machineFlags, error) {
	if fast {
		if model, flags := oneCommandModel(args); model != nil {
			if parser, err := newParser(model, a); err == nil {
				if ctx, err := parser.Parse(args); err == nil {
					return ctx, flags, nil
				}
			}
		}
	}
	var c cli
	parser, err := newParser(&c, a)
	if err != nil {
		panic(err) // the model is this file's: a test catches it
	}
	ctx, err := parser.Parse(args)
	return ctx, &c.machineFlags, err
}

// run parses args, runs the command and returns the exit code.
func run(args []string, a *app) (code int) {
	defer func() {
		if r := recover(); r != nil {
			h, ok := r.(parserExit)
			if !ok {
				panic(r)
			}
			code = int(h)
		}
	}()
	if len(args) == 0 {
		// No command: the usage, as --help gives it, and exit 2.
		if parser, err := newParser(&cli{}, a); err == nil {
			func() {
				defer func() { _ = recover() }() // kong's exit after help
				_, _ = parser.Parse([]string{"--help"})
			}()
		}
		return exitBadInput
	}
	ctx, flags, err := parse(args, a, true)
	if err != nil {
		a.errorf(err.Error(), helpHint(args, a))
		return exitBadInput
	}
	for _, o := range []struct{ flag, place *string }{{&flags.ProcRoot, &a.places.ProcRoot}, {&flags.SysRoot, &a.places.SysRoot},
		{&flags.PolicyPath, &a.places.PolicyPath}, {&flags.BrokerSocket, &a.places.BrokerSocket}} {
		if *o.flag != "" {
			*o.place = *o.flag
		}
	}
	err = ctx.Run(a)
	var ee *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		if ee.msg != "" {
			a.errorf(ee.msg, ee.hint)
		}
		return ee.code
	default:
		a.errorf(err.Error(), "")
		return exitEnv
	}
}
