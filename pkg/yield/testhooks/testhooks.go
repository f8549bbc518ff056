// Package testhooks gives package yield the hooks the end-to-end tests
// ask for through the environment: they set PORTCLAIM_TEST_PAUSE or
// PORTCLAIM_TEST_CRASH in the broker's unit (which only root writes) to
// pause a run between two steps, or kill it there. Only portclaim built
// for those tests (build tag e2e, cmd/portclaim/testhooks_e2e.go)
// imports it: a production binary reads neither variable.
package testhooks

import (
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/portclaim/portclaim/pkg/yield"
)

// The variables, read at each hook point.
const (
	// PauseVar is point=DURATION or point:unit=DURATION (a pause of
	// DURATION), or point=/PATH or point:unit=/PATH (a pause until PATH
	// exists, which lets a test end the pause once it has acted, on a
	// loaded machine as on an idle one); a minute at most either way:
	// the tests' window to change the system between two steps, as a
	// slow step before (fsyncs, earlier stops) would leave one.
	PauseVar = "PORTCLAIM_TEST_PAUSE"
	// CrashVar is a point where the process kills itself (SIGKILL): the
	// tests prove that a run killed there converges on the next one.
	CrashVar = "PORTCLAIM_TEST_CRASH"
)

// maxPause bounds every pause.
const maxPause = time.Minute

// FromEnv returns the hooks that read the variables through getenv, at
// each point.
func FromEnv(getenv func(string) string) yield.Hooks {
	return yield.Hooks{
		Pause: func(point, unit string) { pause(getenv(PauseVar), point, unit) },
		Crash: func(point string) {
			if getenv(CrashVar) == point {
				kill()
			}
		},
	}
}

// kill ends this process at once, as a power cut or the OOM killer would.
var kill = func() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) }

// pause waits at point on unit as spec (PauseVar's value) asks.
func pause(spec, point, unit string) {
	path, d, ok := pauseAt(spec, point, unit)
	switch {
	case !ok:
	case path != "":
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if _, err := os.Stat(path); err == nil {
				return
			}
		}
	default:
		time.Sleep(d)
	}
}

// pauseAt reads spec for point on unit: a pause until path exists (for
// d at most), or for d; ok false when spec asks for none there (another
// point or unit, or a duration that does not parse).
func pauseAt(spec, point, unit string) (path string, d time.Duration, ok bool) {
	at, v, found := strings.Cut(spec, "=")
	if !found || (at != point && at != point+":"+unit) {
		return "", 0, false
	}
	if strings.HasPrefix(v, "/") {
		return v, maxPause, true
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return "", 0, false
	}
	return "", min(d, maxPause), true
}
