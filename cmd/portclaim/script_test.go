package main

import (
	"os"
	"os/user"
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
// manifest, no system bus. `go test -run TestScripts -update` rewrites
// the expected output of `cmp` lines.
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
		Condition: func(cond string) (bool, error) {
			if cond == "root" {
				return os.Geteuid() == 0, nil
			}
			return false, nil
		},
	})
}
