package yield

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portclaim/portclaim/pkg/claim"
	"github.com/portclaim/portclaim/pkg/claimstore"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/places"
	"github.com/portclaim/portclaim/pkg/plan"
	"github.com/portclaim/portclaim/pkg/policy"
	"github.com/portclaim/portclaim/pkg/protocol"
)

// world is a broker's Service acting for alice on a model of units
// (fakeSystemd), with a claims directory of its own and no socket on
// any port.
type world struct {
	t   *testing.T
	sys *fakeSystemd
	svc *Service
}

// needRoot skips a test of the claims directory where it cannot run:
// claims are root's, and the store believes only root's records.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs as root")
		}
		t.Skip("claims are root's: needs root")
	}
}

// newWorld is alice's world under a policy that lets the units of
// yieldTo yield to their users; each such unit has the start condition
// the NixOS module gives it.
func newWorld(t *testing.T, yieldTo map[string][]string, units map[string]*fakeUnit) *world {
	t.Helper()
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "claims")
	store := claimstore.Store{Dir: dir}
	for unit, users := range yieldTo {
		for _, user := range users {
			path, err := store.Path(user, unit)
			if err != nil {
				t.Fatal(err)
			}
			if u := units[unit]; u != nil {
				u.conditions = append(u.conditions, host.Condition{Type: "ConditionPathExists", Negate: true, Param: path})
			}
		}
	}
	// An empty socket table: nothing holds any port.
	proc := t.TempDir()
	if err := os.MkdirAll(filepath.Join(proc, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tcp", "udp"} {
		if err := os.WriteFile(filepath.Join(proc, "net", f), []byte("  sl  local_address rem_address   st\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sys := &fakeSystemd{units: units}
	svc := &Service{Store: store, Authority: plan.Authority{Policy: &policy.Policy{ClaimsDir: dir, Yield: yieldTo}}, Sys: sys,
		Places: places.Places{ProcRoot: proc, TransientDir: filepath.Join(t.TempDir(), "transient")},
		Wait:   10 * time.Millisecond}
	return &world{t: t, sys: sys, svc: svc}
}

var port = endpoint.Endpoint{Proto: endpoint.TCP, Addr: netip.MustParseAddr("127.0.0.1"), Port: 7001}

// yield has alice ask for units.
func (w *world) yield(units ...string) protocol.YieldResult {
	w.t.Helper()
	res, err := w.svc.Yield(context.Background(), "alice", 1000, protocol.YieldRequest{Service: "app", Units: units, Ports: []endpoint.Endpoint{port}})
	if err != nil {
		w.t.Fatalf("yield of %v: %v", units, err)
	}
	return res
}

// release has alice give units back.
func (w *world) release(units ...string) protocol.ReleaseResult {
	w.t.Helper()
	res, err := w.svc.Release(context.Background(), "alice", protocol.ReleaseRequest{Units: units})
	if err != nil {
		w.t.Fatalf("release of %v: %v", units, err)
	}
	return res
}

// records are alice's records, claims and releases under way, by unit.
func (w *world) records() map[string]claim.Record {
	w.t.Helper()
	entries, err := w.svc.Store.List("alice")
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[string]claim.Record{}
	for _, e := range entries {
		out[e.Unit] = e
	}
	return out
}

// wantStates fails unless each unit is in its state ("unit=state").
func (w *world) wantStates(states ...string) {
	w.t.Helper()
	for _, s := range states {
		unit, want, _ := strings.Cut(s, "=")
		if got := w.sys.state(unit); got != want {
			w.t.Errorf("%s is %s, want %s (%v)", unit, got, want, w.sys)
		}
	}
}

// wantJobs fails unless exactly these jobs were asked, in this order.
func (w *world) wantJobs(jobs ...string) {
	w.t.Helper()
	if !slices.Equal(w.sys.jobs, jobs) {
		w.t.Errorf("jobs %q, want %q", w.sys.jobs, jobs)
	}
}

// outcome is unit's result among units.
func outcome(t *testing.T, units []protocol.UnitResult, unit string) protocol.UnitResult {
	t.Helper()
	for _, r := range units {
		if r.Unit == unit {
			return r
		}
	}
	t.Fatalf("no result for %s in %+v", unit, units)
	return protocol.UnitResult{}
}

// active and inactive are units in that state, with more said of them.
func active(u fakeUnit) *fakeUnit   { u.state = "active"; return &u }
func inactive(u fakeUnit) *fakeUnit { u.state = "inactive"; return &u }
