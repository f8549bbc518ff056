package e2e

// The invariant every scenario keeps: a system unit is down only while a
// record that `status` shows (and `release` can act on) says why. Each
// unit a scenario installs (systemUnit) and that ran is checked when the
// scenario ends, after its own clean-up steps and before the unit is
// removed; a unit root stops by hand (rootStop) is left out: root may.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// rootStopped lists, by test, the units root stopped by hand.
var rootStopped sync.Map // *testing.T -> map[string]bool

// rootStop stops units as root, by hand: the invariant does not ask a
// record of them.
func rootStop(t *testing.T, ctx context.Context, units ...string) {
	t.Helper()
	exemptFromInvariant(t, units...)
	must(t, ctx, "root", append([]string{"systemctl", "stop"}, units...)...)
}

// exemptFromInvariant marks units root takes down in a scenario's own way.
func exemptFromInvariant(t *testing.T, units ...string) {
	v, _ := rootStopped.LoadOrStore(t, map[string]bool{})
	for _, u := range units {
		v.(map[string]bool)[u] = true
	}
}

// keepsInvariant checks unit when the test ends (registered when it is
// installed: it runs after the clean-ups the scenario adds later), if it
// ever ran: a unit the scenario left stopped from the start needs no
// record.
func keepsInvariant(t *testing.T, unit string) {
	t.Cleanup(func() {
		if v, ok := rootStopped.Load(t); ok && v.(map[string]bool)[unit] {
			return
		}
		ctx := context.Background()
		if strings.TrimSpace(m.Run(ctx, "root", "systemctl", "show", "-P", "InactiveExitTimestampMonotonic", unit).Stdout) == "0" {
			return
		}
		checkInvariant(t, ctx, claimsDir, unit)
	})
}

// checkInvariant fails the test when a unit is down while no record says
// why: every inactive unit of units that ran before must have a record
// (a claim or a release under way) of some user, that `status` as root
// shows.
func checkInvariant(t *testing.T, ctx context.Context, dir string, units ...string) {
	t.Helper()
	status := must(t, ctx, "root", "portclaim", "status")
	for _, u := range units {
		if isActive(ctx, u) == "active" {
			continue
		}
		// A record may name the unit by any of its names (an alias).
		var found []string
		for _, name := range strings.Fields(must(t, ctx, "root", "systemctl", "show", "-P", "Names", u)) {
			r := m.Run(ctx, "root", "sh", "-c", fmt.Sprintf("ls %s/*/%s %s/*/.releasing/%s 2>/dev/null", dir, name, dir, name))
			if strings.TrimSpace(r.Stdout) != "" {
				found = append(found, name)
			}
		}
		if len(found) == 0 {
			t.Errorf("%s is down without a record in %s", u, dir)
		}
		// The claim's own line, not the policy's "may yield" one.
		for _, name := range found {
			if !strings.Contains(status, "claim: "+name+" yields to ") && !strings.Contains(status, " on "+name+": ") {
				t.Errorf("%s is down with a record on %s that status does not show:\n%s", u, name, status)
			}
		}
	}
}
