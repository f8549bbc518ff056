package yield

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/portclaim/portclaim/pkg/protocol"
)

// TestTheHookPointsAreBetweenTheSteps: each hook point is where the
// end-to-end tests rely on it being: the yield's claims written and
// nothing stopped yet at after-claim and at before-stop (which names
// the unit to stop next), the record moved aside and the unit not
// started yet at after-begin-release.
func TestTheHookPointsAreBetweenTheSteps(t *testing.T) {
	w := newWorld(t, alice("a.service"), map[string]*fakeUnit{"a.service": active(fakeUnit{})})
	claimed := filepath.Join(w.svc.Store.Dir, "alice", "a.service")
	releasing := filepath.Join(w.svc.Store.Dir, "alice", ".releasing", "a.service")
	var seen []string
	at := func(point string) {
		s := point + ": a.service " + w.sys.state("a.service")
		if _, err := os.Stat(claimed); err == nil {
			s += ", claimed"
		}
		if _, err := os.Stat(releasing); err == nil {
			s += ", releasing"
		}
		seen = append(seen, s)
	}
	w.svc.Hooks = &Hooks{
		Pause: func(point, unit string) { at(point + " " + unit) },
		Crash: at,
	}
	w.yield("a.service")
	w.release("a.service")
	want := []string{
		"after-claim: a.service active, claimed",
		"before-stop a.service: a.service active, claimed",
		"after-begin-release: a.service inactive, releasing",
	}
	if !slices.Equal(seen, want) {
		t.Errorf("at the hook points:\n%s\nwant\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
}

// killed is a test's stand-in for SIGKILL at a crash point.
type killed struct{}

// killedAt runs f, which the hooks end at point.
func (w *world) killedAt(point string, f func()) {
	w.t.Helper()
	w.svc.Hooks = &Hooks{Crash: func(p string) {
		if p == point {
			panic(killed{})
		}
	}}
	defer func() {
		w.svc.Hooks = &Hooks{}
		if r := recover(); r != (killed{}) {
			w.t.Fatalf("not killed at %s: %v", point, r)
		}
	}()
	f()
}

// TestARunKilledBetweenTwoStepsConverges: a yield killed once its
// claims are written leaves the unit running under its claim, and the
// next yield stops it without claiming again; a release killed once the
// record is moved aside leaves the unit down with that record, and the
// next release starts it.
func TestARunKilledBetweenTwoStepsConverges(t *testing.T) {
	w := newWorld(t, alice("a.service"), map[string]*fakeUnit{"a.service": active(fakeUnit{})})
	w.killedAt("after-claim", func() { w.yield("a.service") })
	first, ok := w.records()["a.service"]
	if !ok || w.sys.state("a.service") != "active" {
		t.Fatalf("killed after the claim: record %v, %v", ok, w.sys)
	}
	res := w.yield("a.service")
	if a := outcome(t, res.Units, "a.service"); a.Outcome != protocol.Stopped {
		t.Errorf("the next yield: %+v", a)
	}
	if again := w.records()["a.service"]; !again.Claim.ClaimedAt.Equal(first.Claim.ClaimedAt) {
		t.Errorf("the next yield claimed again: %+v, first %+v", again.Claim, first.Claim)
	}
	w.wantStates("a.service=inactive")

	w.killedAt("after-begin-release", func() { w.release("a.service") })
	if r := w.records()["a.service"]; !r.Releasing || w.sys.state("a.service") != "inactive" {
		t.Fatalf("killed after moving the record aside: %+v, %v", r, w.sys)
	}
	if a := outcome(t, w.release("a.service").Units, "a.service"); a.Outcome != protocol.Restarted {
		t.Errorf("the next release: %+v", a)
	}
	w.wantStates("a.service=active")
	if r := w.records(); len(r) > 0 {
		t.Errorf("records left: %v", r)
	}
}

// TestADependentThatStartsBeforeTheStopIsNotTakenDown: a unit the policy
// does not name starts, depending on the asked one, after the yield was
// planned and before its stop. The stop would take it down with no
// record: the yield reads again just before the stop, refuses it, and
// undoes what it did; both units keep running, and no claim stays.
func TestADependentThatStartsBeforeTheStopIsNotTakenDown(t *testing.T) {
	w := newWorld(t, alice("a.service"), map[string]*fakeUnit{
		"a.service": active(fakeUnit{}),
		"c.service": inactive(fakeUnit{requires: []string{"a.service"}}),
	})
	w.svc.Hooks = &Hooks{Pause: func(point, unit string) {
		if point == "before-stop" && unit == "a.service" {
			w.sys.units["c.service"].state = "active" // root starts it
		}
	}}
	res := w.yield("a.service")
	a := outcome(t, res.Units, "a.service")
	if a.Outcome != protocol.Failed || a.Detail != "not stopped: a stop now would also stop c.service (it depends on a.service), which was not running when this yield was planned; what this yield did is undone, ask again" {
		t.Errorf("%+v", a)
	}
	w.wantJobs()
	w.wantStates("a.service=active", "c.service=active")
	if r := w.records(); len(r) > 0 {
		t.Errorf("records left by an undone yield: %v", r)
	}
}
