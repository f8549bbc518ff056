package e2e

// Waiting for events, never for time: the machine these tests run on is
// shared and loaded, and a step takes what it takes. Every wait asks for
// the event (a unit's state, a socket, a file) again and again, and gives
// up only after waitTimeout; every window a test needs open (a stop in
// progress, a job queued) stays open until the test has acted, through a
// gate.

import (
	"context"
	"fmt"
	"path"
	"strconv"
	"strings"
	"testing"
	"time"
)

// waitTimeout bounds every wait for an event: long enough for a machine
// with other test machines beside it, and only ever spent when the event
// does not come.
const waitTimeout = 90 * time.Second

// waitUntil waits until cond holds, asking again as soon as it answered,
// and fails the test with cond's last detail after waitTimeout.
func waitUntil(t *testing.T, ctx context.Context, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("waiting for %s: not after %s; last:\n%s", what, waitTimeout, detail)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// gate is a FIFO in the machine that a unit's command waits on (Wait)
// until the test lets it go (Open): a slow ExecStop or start job that
// lasts exactly until the test has done what it must do meanwhile.
type gate string

// newGate makes the FIFO. Make it after the units that wait on it: its
// cleanup, which lets anything still waiting go, must come before theirs.
func newGate(t *testing.T, ctx context.Context, name string) gate {
	t.Helper()
	g := gate(path.Join("/run", "pc-gate-"+name))
	must(t, ctx, "root", "sh", "-c", fmt.Sprintf("rm -f %s && mkfifo -m 0600 %s", g, g))
	t.Cleanup(func() {
		ctx := context.Background()
		m.Run(ctx, "root", "timeout", "5", "sh", "-c", fmt.Sprintf("echo go > %s", g))
		m.Run(ctx, "root", "rm", "-f", string(g))
	})
	return g
}

// Wait is the command a unit runs to wait at the gate.
func (g gate) Wait() string {
	return fmt.Sprintf("/bin/sh -c 'read x < %s'", g)
}

// Open lets what waits at the gate go on; it waits for a waiter (opening
// a FIFO to write blocks until someone reads), at most waitTimeout.
func (g gate) Open(t *testing.T, ctx context.Context) {
	t.Helper()
	must(t, ctx, "root", "timeout", strconv.Itoa(int(waitTimeout/time.Second)), "sh", "-c", fmt.Sprintf("echo go > %s", g))
}

// addDropIn adds a drop-in to a system unit (/etc/systemd/system/UNIT.d/
// pc-test.conf) and reloads systemd, until the test ends.
func addDropIn(t *testing.T, ctx context.Context, unit, body string) {
	t.Helper()
	p := "/etc/systemd/system/" + unit + ".d/pc-test.conf"
	if err := m.WriteFile(p, []byte(body), 0o644, ""); err != nil {
		t.Fatal(err)
	}
	must(t, ctx, "root", "systemctl", "daemon-reload")
	t.Cleanup(func() {
		ctx := context.Background()
		m.Run(ctx, "root", "rm", "-f", p)
		m.Run(ctx, "root", "systemctl", "daemon-reload")
	})
}

// journalSays waits until `journalctl --no-pager ARGS` (as root) holds
// every one of want, and returns what it printed: journald writes a line
// a moment after the process that sent it has moved on.
func journalSays(t *testing.T, ctx context.Context, what string, want []string, args ...string) string {
	t.Helper()
	var out string
	waitUntil(t, ctx, what+" saying "+strings.Join(want, ", "), func() (bool, string) {
		out = must(t, ctx, "root", append([]string{"journalctl", "--no-pager"}, args...)...)
		for _, w := range want {
			if !strings.Contains(out, w) {
				return false, out
			}
		}
		return true, out
	})
	return out
}
