// Command portclaim lets a user's home-manager services claim the ports
// that system services hold. This file only wires flags to pkg/.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	"golang.org/x/sys/unix"

	"github.com/portclaim/portclaim/pkg/conflict"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/flow"
	"github.com/portclaim/portclaim/pkg/inspect"
	"github.com/portclaim/portclaim/pkg/manifest"
	"github.com/portclaim/portclaim/pkg/report"
)

// Exit codes (README "Exit codes"), defined once in pkg/flow.
const (
	exitOK        = flow.ExitOK
	exitConflicts = flow.ExitConflicts
	exitBadInput  = flow.ExitBadInput
	exitEnv       = flow.ExitEnv
)

// version is set by the Nix build (-X main.version=...).
var version = ""

type cli struct {
	Check    checkCmd    `cmd:"" help:"Report which claimed ports are held, by whom, and what to do (exit 1 on conflicts)."`
	Resolve  resolveCmd  `cmd:"" help:"Check, then make system units yield per the strategy (exit 0 unless strict)."`
	Release  releaseCmd  `cmd:"" help:"Give back claims the manifest no longer declares (or --all) and start those units again."`
	Status   statusCmd   `cmd:"" help:"Show the policy, your claims (root: everyone's) and who holds each claimed port."`
	Who      whoCmd      `cmd:"" help:"Say who holds a port: PORT, PORT/tcp or PORT/udp."`
	Validate validateCmd `cmd:"" help:"Check a manifest file; print every problem with its JSON path (exit 2 if any)."`
	Version  versionCmd  `cmd:"" help:"Print the version."`
}

// env is what every command gets: where to write, and where /proc is.
type env struct {
	stdout, stderr io.Writer
	procRoot       string
}

// exitError carries an exit code and an optional message for stderr.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func fail(code int, format string, args ...any) error {
	return &exitError{code: code, msg: fmt.Sprintf(format, args...)}
}

type checkCmd struct {
	Manifest string        `help:"Manifest file (JSON, version 1). Default: the built-in map of local AI services." placeholder:"FILE" type:"path"`
	JSON     bool          `name:"json" help:"Print JSON (schema in the README)."`
	User     string        `help:"Check for this user's user units (root only; default: you)." placeholder:"NAME"`
	Policy   string        `default:"/etc/portclaim/policy.json" help:"The system policy; its claims directory tells which units your claims keep down." placeholder:"FILE"`
	Timeout  time.Duration `default:"10s" help:"How long to wait for each systemd manager."`
}

func (c *checkCmd) Run(e *env) error {
	m, source, err := loadManifest(c.Manifest)
	if err != nil {
		return err
	}
	uid, err := targetUID(c.User)
	if err != nil {
		return err
	}
	res, err := flow.Check(context.Background(), flow.Options{Manifest: m, Source: source, ProcRoot: e.procRoot, UID: uid,
		User: inspect.NameOf(uint32(uid)), PolicyPath: c.Policy, Timeout: c.Timeout, Out: e.stdout})
	if err != nil {
		return fail(exitEnv, "%v", err)
	}
	if c.JSON {
		if err := report.JSON(e.stdout, source, res); err != nil {
			return err
		}
	} else {
		report.Text(e.stdout, source, res)
	}
	switch {
	case len(res.Broken) > 0:
		return &exitError{code: exitEnv}
	case conflicts(res.Findings):
		return &exitError{code: exitConflicts}
	}
	return nil
}

func conflicts(fs []conflict.Finding) bool {
	for _, f := range fs {
		if f.Kind.Conflict() {
			return true
		}
	}
	return false
}

// actFlags are shared by resolve and release.
type actFlags struct {
	Manifest string        `help:"Manifest file (JSON, version 1). Default: the built-in map." placeholder:"FILE" type:"path"`
	DryRun   bool          `name:"dry-run" help:"Print the plan, change nothing (also when $DRY_RUN is set, as home-manager does)."`
	Verbose  bool          `short:"v" help:"Print the check report before acting (also when $VERBOSE is set)."`
	User     string        `help:"Act for this user's claims (root only; default: you)." placeholder:"NAME"`
	Policy   string        `default:"/etc/portclaim/policy.json" help:"The system policy (root-owned)." placeholder:"FILE"`
	Wait     time.Duration `default:"10s" help:"How long to wait for each stop/start job and for ports to change hands."`
	Timeout  time.Duration `default:"10s" help:"How long to wait for each systemd manager (and for the lock)."`
}

func (f actFlags) options(e *env) (flow.Options, error) {
	m, source, err := loadManifest(f.Manifest)
	if err != nil {
		return flow.Options{}, err
	}
	uid, err := targetUID(f.User)
	if err != nil {
		return flow.Options{}, err
	}
	return flow.Options{Manifest: m, Source: source, ProcRoot: e.procRoot, UID: uid, User: inspect.NameOf(uint32(uid)),
		PolicyPath: f.Policy, Timeout: f.Timeout, Wait: f.Wait, DryRun: f.DryRun || os.Getenv("DRY_RUN") != "", Verbose: f.Verbose || os.Getenv("VERBOSE") != "", Out: e.stdout}, nil
}

type resolveCmd struct {
	actFlags
	Yes bool `help:"Act without asking even when the manifest says autoResolve = false."`
}

func (c *resolveCmd) Run(e *env) error {
	opt, err := c.options(e)
	if err != nil {
		return err
	}
	if !opt.Manifest.AutoResolve && !c.Yes {
		opt.Confirm = confirmer(e)
	}
	return exitCode(flow.Resolve(context.Background(), opt))
}

// confirmer asks on a terminal (default no); without one it reports and
// goes on, as home-manager runs without a terminal in a systemd unit.
func confirmer(e *env) func(string) bool {
	if _, err := unix.IoctlGetTermios(int(os.Stdin.Fd()), unix.TCGETS); err != nil {
		return func(q string) bool {
			fmt.Fprintf(e.stdout, "autoResolve is off and there is no terminal to ask %q: reporting only\n", q)
			return false
		}
	}
	in := bufio.NewReader(os.Stdin)
	return func(q string) bool {
		fmt.Fprintf(e.stdout, "%s [y/N] ", q)
		answer, _ := in.ReadString('\n')
		answer = strings.ToLower(strings.TrimSpace(answer))
		return answer == "y" || answer == "yes"
	}
}

type releaseCmd struct {
	actFlags
	All bool `help:"Give back every claim, declared or not."`
}

func (c *releaseCmd) Run(e *env) error {
	opt, err := c.options(e)
	if err != nil {
		return err
	}
	opt.All = c.All
	return exitCode(flow.Release(context.Background(), opt))
}

type statusCmd struct {
	User   string `help:"Show this user's claims (root only; default: you, or everyone for root)." placeholder:"NAME"`
	Policy string `default:"/etc/portclaim/policy.json" help:"The system policy." placeholder:"FILE"`
}

func (c *statusCmd) Run(e *env) error {
	uid, err := targetUID(c.User)
	if err != nil {
		return err
	}
	return exitCode(flow.Status(flow.Options{ProcRoot: e.procRoot, UID: uid, User: inspect.NameOf(uint32(uid)), PolicyPath: c.Policy, Out: e.stdout}))
}

func exitCode(code int) error {
	if code == exitOK {
		return nil
	}
	return &exitError{code: code}
}

type whoCmd struct {
	Port     string `arg:"" help:"PORT, PORT/tcp or PORT/udp."`
	Manifest string `help:"Manifest whose units are expected on the port (default: the built-in map)." placeholder:"FILE" type:"path"`
}

func (c *whoCmd) Run(e *env) error {
	port, proto, err := parsePortArg(c.Port)
	if err != nil {
		return fail(exitBadInput, "%v", err)
	}
	m, _, err := loadManifest(c.Manifest)
	if err != nil {
		return err
	}
	expected := inspect.Expected(m, port, proto, uint32(os.Getuid()))
	held, err := inspect.Who(inspect.Options{ProcRoot: e.procRoot}, port, proto, expected)
	if err != nil {
		return fail(exitEnv, "%v", err)
	}
	if len(held) == 0 {
		fmt.Fprintf(e.stdout, "port %s: free\n", c.Port)
		return nil
	}
	for _, h := range held {
		fmt.Fprintln(e.stdout, report.WhoLine(h))
	}
	return nil
}

// parsePortArg reads "11434", "11434/tcp" or "53/udp".
func parsePortArg(s string) (uint16, endpoint.Proto, error) {
	num, proto, hasProto := strings.Cut(s, "/")
	n, err := strconv.ParseUint(num, 10, 16)
	if err != nil || n == 0 {
		return 0, "", fmt.Errorf("%q is not a port: give PORT, PORT/tcp or PORT/udp with PORT from 1 to 65535", s)
	}
	if hasProto && proto != "tcp" && proto != "udp" {
		return 0, "", fmt.Errorf("%q: protocol %q is not tcp or udp", s, proto)
	}
	return uint16(n), endpoint.Proto(proto), nil
}

type validateCmd struct {
	File string `arg:"" help:"Manifest file to check." type:"path"`
}

func (c *validateCmd) Run(e *env) error {
	m, source, err := loadManifest(c.File)
	if err != nil {
		return err
	}
	ports := 0
	for _, s := range m.Services {
		ports += len(s.Ports)
	}
	fmt.Fprintf(e.stdout, "%s: valid (version %d, strategy %s, %d services, %d ports)\n", source, m.Version, m.Strategy, len(m.Services), ports)
	return nil
}

type versionCmd struct{}

func (versionCmd) Run(e *env) error {
	v := version
	if v == "" {
		v = "devel"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	fmt.Fprintf(e.stdout, "portclaim %s (manifest version %d)\n", v, manifest.Version)
	return nil
}

func loadManifest(path string) (manifest.Manifest, string, error) {
	if path == "" {
		return manifest.Default(), "the built-in default map", nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return manifest.Manifest{}, path, fail(exitBadInput, "reading the manifest: %v", err)
	}
	m, err := manifest.Parse(path, data)
	if err != nil {
		return m, path, fail(exitBadInput, "%v\nnothing was checked or changed; fix the fields above (the home-manager module's services.portclaim options render this file)", err)
	}
	return m, path, nil
}

// targetUID is whose user units the manifest declares: the caller, or
// for root, the user named with --user.
func targetUID(name string) (int, error) {
	if name == "" {
		return os.Getuid(), nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return 0, fail(exitBadInput, "--user %s: no such user", name)
	}
	uid, _ := strconv.Atoi(u.Uid)
	if uid != os.Getuid() && os.Geteuid() != 0 {
		return 0, fail(exitBadInput, "--user %s: only root may check another user's units", name)
	}
	return uid, nil
}

func main() {
	os.Exit(run(os.Args[1:], &env{stdout: os.Stdout, stderr: os.Stderr, procRoot: "/proc"}))
}

// helpExit is how kong's exit after --help reaches run without ending
// the process (tests call run directly).
type helpExit int

// run parses args, runs the command and returns the exit code.
func run(args []string, e *env) (code int) {
	defer func() {
		if r := recover(); r != nil {
			h, ok := r.(helpExit)
			if !ok {
				panic(r)
			}
			code = int(h)
		}
	}()
	var c cli
	parser, err := kong.New(&c,
		kong.Name("portclaim"),
		kong.Description("Let home-manager services claim the ports that system services hold."),
		kong.Writers(e.stdout, e.stderr),
		kong.Exit(func(code int) { panic(helpExit(code)) }),
	)
	if err != nil {
		panic(err)
	}
	ctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(e.stderr, "portclaim: %v (see portclaim --help)\n", err)
		return exitBadInput
	}
	err = ctx.Run(e)
	var ee *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintf(e.stderr, "portclaim: %s\n", ee.msg)
		}
		return ee.code
	default:
		fmt.Fprintf(e.stderr, "portclaim: %v\n", err)
		return exitEnv
	}
}
