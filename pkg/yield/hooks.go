package yield

import (
	"os"
	"strings"
	"syscall"
	"time"
)

// testPause waits when PORTCLAIM_TEST_PAUSE is point=DURATION, or
// point:unit=DURATION, or point[:unit]=/PATH (until PATH exists): at most
// a minute, the end-to-end tests' window to change the system between two
// steps on unit, as a slow step before (fsyncs, earlier stops) would leave
// one. A path lets a test end the pause once it has acted, on a loaded
// machine as on an idle one. Only the unit's own environment (root's) can
// set it for the broker.
func testPause(point, unit string) {
	at, d, ok := strings.Cut(os.Getenv("PORTCLAIM_TEST_PAUSE"), "=")
	if !ok || (at != point && at != point+":"+unit) {
		return
	}
	if strings.HasPrefix(d, "/") {
		for end := time.Now().Add(time.Minute); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if _, err := os.Stat(d); err == nil {
				return
			}
		}
		return
	}
	if dur, err := time.ParseDuration(d); err == nil {
		time.Sleep(min(dur, time.Minute))
	}
}

// crashPoint kills this process when PORTCLAIM_TEST_CRASH names point:
// fault injection for the end-to-end tests that prove a run killed at
// that step converges on the next one. Only the unit's own environment
// (root's) can set it for the broker.
func crashPoint(point string) {
	if os.Getenv("PORTCLAIM_TEST_CRASH") == point {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
}
