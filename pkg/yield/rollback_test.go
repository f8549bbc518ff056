package yield

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/portclaim/portclaim/pkg/protocol"
)

// TestAYieldWhoseStopFailsIsUndone: the stop of the asked unit fails
// after its dependent was stopped. What the yield did is undone: both
// units run again (the one whose stop failed is started too, as its
// ExecStop= left it failed), no record stays, and the result says which
// step failed and what was given back.
func TestAYieldWhoseStopFailsIsUndone(t *testing.T) {
	w := newWorld(t, alice("a.service", "b.service"), map[string]*fakeUnit{
		"a.service": active(fakeUnit{stopResult: "failed"}),
		"b.service": active(fakeUnit{requires: []string{"a.service"}}),
	})
	res := w.yield("a.service")
	if a := outcome(t, res.Units, "a.service"); a.Outcome != protocol.Failed || a.Detail != "stopping it: failed" {
		t.Errorf("a.service: %+v", a)
	}
	if b := outcome(t, res.Units, "b.service"); b.Outcome != protocol.RolledBack || b.Detail != "given back because another step failed: started again, as it ran before the first claim" {
		t.Errorf("b.service: %+v", b)
	}
	w.wantJobs("stop b.service", "stop a.service", "start a.service replace", "start b.service replace")
	w.wantStates("a.service=active", "b.service=active")
	if r := w.records(); len(r) > 0 {
		t.Errorf("records left by an undone yield: %v", r)
	}
}

// TestAYieldWhoseStopIsCanceledIsUndone: the second of two stops is
// canceled (the unit stays up): the first unit, the socket, starts
// again, and no record stays.
func TestAYieldWhoseStopIsCanceledIsUndone(t *testing.T) {
	w := newWorld(t, alice("a.socket", "a.service"), map[string]*fakeUnit{
		"a.socket":  active(fakeUnit{}),
		"a.service": active(fakeUnit{triggeredBy: []string{"a.socket"}, stopResult: "canceled"}),
	})
	res := w.yield("a.service")
	if a := outcome(t, res.Units, "a.service"); a.Outcome != protocol.Failed || a.Detail != "stopping it: canceled" {
		t.Errorf("a.service: %+v", a)
	}
	if s := outcome(t, res.Units, "a.socket"); s.Outcome != protocol.RolledBack {
		t.Errorf("a.socket: %+v", s)
	}
	w.wantJobs("stop a.socket", "stop a.service", "start a.socket replace")
	w.wantStates("a.socket=active", "a.service=active")
	if r := w.records(); len(r) > 0 {
		t.Errorf("records left by an undone yield: %v", r)
	}
}

// TestAYieldWhoseStopIsCanceledBringsItsDependentBack: the dependent
// (b.service Requires= a.service) is stopped with it, then a.service's
// stop is canceled and it stays up: the dependent starts again, and no
// record stays (it waited for a unit that was up).
func TestAYieldWhoseStopIsCanceledBringsItsDependentBack(t *testing.T) {
	w := newWorld(t, alice("a.service", "b.service"), map[string]*fakeUnit{
		"a.service": active(fakeUnit{stopResult: "canceled"}),
		"b.service": active(fakeUnit{requires: []string{"a.service"}, after: []string{"a.service"}}),
	})
	res := w.yield("a.service")
	if a := outcome(t, res.Units, "a.service"); a.Outcome != protocol.Failed {
		t.Errorf("a.service: %+v", a)
	}
	if b := outcome(t, res.Units, "b.service"); b.Outcome != protocol.RolledBack {
		t.Errorf("b.service: %+v", b)
	}
	w.wantStates("a.service=active", "b.service=active")
	if r := w.records(); len(r) > 0 {
		t.Errorf("records left by an undone yield: %v", r)
	}
}

// TestAReleaseWhoseStartFailsKeepsItsRecord: a released unit that does
// not come back, its start job failing or the unit failing once
// started, keeps its record (in .releasing, where no condition looks),
// with why; the next release, once the unit can start, brings it back
// and the record goes.
func TestAReleaseWhoseStartFailsKeepsItsRecord(t *testing.T) {
	for _, c := range []struct {
		name    string
		breakIt func(*fakeUnit)
		why     string
	}{
		{"its start job fails", func(u *fakeUnit) { u.startResult = "failed" }, "starting it: failed"},
		{"it fails once started", func(u *fakeUnit) { u.failsAfterStart = true }, "its start job finished, but it is failed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, alice("a.service"), map[string]*fakeUnit{"a.service": active(fakeUnit{})})
			if res := w.yield("a.service"); outcome(t, res.Units, "a.service").Outcome != protocol.Stopped {
				t.Fatalf("%+v", res)
			}
			c.breakIt(w.sys.units["a.service"])
			res := w.release("a.service")
			a := outcome(t, res.Units, "a.service")
			stays := filepath.Join(w.svc.Store.Dir, "alice", ".releasing", "a.service")
			if a.Outcome != protocol.Failed || a.Detail != c.why+"; its record stays ("+stays+"), and the next release or reconcile tries again" {
				t.Errorf("%+v", a)
			}
			r, ok := w.records()["a.service"]
			if !ok || !r.Releasing || r.Path != stays || r.Claim.Release == nil || r.Claim.Release.LastError != c.why || r.Claim.Release.Attempts != 1 {
				t.Fatalf("the record %+v (there: %v); want it in .releasing, saying why", r, ok)
			}
			if w.sys.state("a.service") == "active" {
				t.Error("a.service runs")
			}

			// Fixed, it comes back on the next release, and the record goes.
			*w.sys.units["a.service"] = fakeUnit{state: "failed", conditions: w.sys.units["a.service"].conditions}
			if a := outcome(t, w.release("a.service").Units, "a.service"); a.Outcome != protocol.Restarted {
				t.Errorf("the release after the fix: %+v", a)
			}
			w.wantStates("a.service=active")
			if r := w.records(); len(r) > 0 {
				t.Errorf("records left: %v", r)
			}
			if !strings.HasPrefix(strings.Join(w.sys.jobs, ","), "stop a.service,start a.service replace,start a.service replace") {
				t.Errorf("jobs %q", w.sys.jobs)
			}
		})
	}
}
