package main

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/portclaim/portclaim/pkg/places"
)

// TestMain lets the script tests run `portclaim` as a command: the same
// run() the binary's main calls, in a process of its own.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"portclaim": func() {
			// The places no flag moves are the script's own (Setup): a
			// script never reads or writes the machine's /run or /var.
			places := places.Default
			places.Booted, places.LingerDir, places.RootRuns = os.Getenv("PC_BOOTED"), os.Getenv("PC_LINGER_DIR"), os.Getenv("PC_ROOT_RUNS")
			places.TransientDir = os.Getenv("PC_TRANSIENT_DIR")
			a := &app{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin, places: places,
				euid: os.Geteuid(), getenv: os.Getenv, lookupEnv: os.LookupEnv}
			os.Exit(run(os.Args[1:], a))
		},
	})
}

// TestScripts runs the CLI as a user meets it (testdata/script/*.txtar):
// commands, what they print on stdout and stderr, and their exit codes,
// unprivileged, on fixtures instead of this machine: a socket table, a
// manifest, no system bus. `UPDATE_SCRIPTS=1 go test -run TestScripts`
// rewrites the expected output of `cmp` lines. Besides testscript's
// commands, `exits CODE COMMAND ARGS...` runs a command as exec does and
// checks its exit code (`! exec` only checks that it is not 0).
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:           "testdata/script",
		UpdateScripts: os.Getenv("UPDATE_SCRIPTS") != "",
		Setup: func(e *testscript.Env) error {
			// No system bus, and no colours: what a script sees is what
			// a pipe sees.
			e.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path="+e.WorkDir+"/no-bus")
			e.Setenv("NO_COLOR", "1")
			e.Setenv("XDG_CONFIG_HOME", e.WorkDir+"/config")
			e.Setenv("XDG_STATE_HOME", e.WorkDir+"/state")
			// Where systemd would say it runs, who lingers, root's records
			// of its runs for users, root mode's masks: the script's own.
			e.Setenv("PC_BOOTED", e.WorkDir+"/run/systemd/system")
			e.Setenv("PC_LINGER_DIR", e.WorkDir+"/var/lib/systemd/linger")
			e.Setenv("PC_ROOT_RUNS", e.WorkDir+"/var/lib/portclaim/last-run")
			e.Setenv("PC_TRANSIENT_DIR", e.WorkDir+"/run/systemd/transient")
			// Commands name whose claims: the user running the scripts,
			// or as root, who has no claims of its own, nobody (root acts
			// for them).
			if u, err := user.Current(); err == nil {
				e.Setenv("USER", u.Username)
			}
			if os.Geteuid() == 0 {
				e.Setenv("USER", "nobody")
			}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){"exits": exits, "width": width, "stalesocket": staleSocket},
		Condition: func(cond string) (bool, error) {
			if cond == "root" {
				return os.Geteuid() == 0, nil
			}
			return false, nil
		},
	})
}

// exits is `exits CODE COMMAND ARGS...`: exec, and the command must end
// with exit code CODE.
func exits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE COMMAND [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: %q is not an exit code", args[0])
	}
	got := 0
	var ee *exec.ExitError
	if err := ts.Exec(args[1], args[2:]...); errors.As(err, &ee) {
		got = ee.ExitCode()
	} else if err != nil {
		ts.Fatalf("exits: %v", err)
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", args[1], got, want)
	}
}

// width is `width N`: every line of the last command's stdout (its
// report) is at most N columns (runes) wide.
func width(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: width N")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("width: %q is not a number", args[0])
	}
	for _, stream := range []string{"stdout"} {
		for _, line := range strings.Split(ts.ReadFile(stream), "\n") {
			if utf8.RuneCountInString(line) > n {
				ts.Fatalf("%s has a line of %d columns, more than %d:\n%s", stream, utf8.RuneCountInString(line), n, line)
			}
		}
	}
}

// staleSocket is `stalesocket PATH`: a Unix socket file nothing listens
// on, as systemd leaves portclaim.socket's when the unit stops.
func staleSocket(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: stalesocket PATH")
	}
	ln, err := net.Listen("unix", ts.MkAbs(args[0]))
	if err != nil {
		ts.Fatalf("stalesocket: %v", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
}
