package main

import (
	"errors"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/portclaim/portclaim/pkg/gather"
)

// TestMain lets the script tests run `portclaim` as a command: the same
// run() the binary's main calls, in a process of its own.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"portclaim": func() {
			a := &app{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin, places: gather.Default,
				euid: os.Geteuid(), getenv: os.Getenv}
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
			// resolve and release act for a named user when run as root:
			// the scripts name the one running them.
			if u, err := user.Current(); err == nil {
				e.Setenv("USER", u.Username)
			}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){"exits": exits},
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
