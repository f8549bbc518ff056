package yield

import (
	"slices"
	"strings"
	"testing"

	"github.com/portclaim/portclaim/pkg/claim"
	"github.com/portclaim/portclaim/pkg/protocol"
)

// alice lets units yield to alice.
func alice(units ...string) map[string][]string {
	out := map[string][]string{}
	for _, u := range units {
		out[u] = []string{"alice"}
	}
	return out
}

// wantRefused fails unless res is a refusal that names units (the ones
// the policy does not let yield, in any order) and says each of says,
// and nothing was recorded, asked of systemd or changed.
func (w *world) wantRefused(res protocol.YieldResult, before string, units []string, says ...string) {
	w.t.Helper()
	if res.Refused == nil {
		w.t.Fatalf("not refused: %+v (%v)", res, w.sys)
	}
	if !slices.Equal(slices.Sorted(slices.Values(res.Refused.Units)), slices.Sorted(slices.Values(units))) {
		w.t.Errorf("refused for %v, want %v", res.Refused.Units, units)
	}
	for _, s := range says {
		if !strings.Contains(res.Refused.Says, s) {
			w.t.Errorf("the refusal says %q\nwant it to say %q", res.Refused.Says, s)
		}
	}
	if !strings.HasSuffix(res.Refused.Says, "nothing was changed") {
		w.t.Errorf("the refusal does not say that nothing was changed: %q", res.Refused.Says)
	}
	if r := w.records(); len(r) > 0 {
		w.t.Errorf("a refused yield left records: %v", r)
	}
	w.wantJobs()
	if now := w.sys.String(); now != before {
		w.t.Errorf("a refused yield changed units:\n%s\nbefore:\n%s", now, before)
	}
}

// TestAStopTakesAlongWhatDependsOnIt: a unit's stop takes along every
// active unit that depends on it (Requires=, Requisite=, BindsTo=,
// PartOf=, its PropagatesStopTo=, and so on through those) and the
// StopWhenUnneeded= helpers it alone needed; the yield is refused while
// the policy does not let each of them yield to the user too, and
// nothing is changed. A dependent that does not run is not in the way.
func TestAStopTakesAlongWhatDependsOnIt(t *testing.T) {
	for _, c := range []struct {
		name  string
		units map[string]*fakeUnit
		want  []string // refused for
		says  []string
	}{{
		name: "Requires",
		units: map[string]*fakeUnit{
			"a.service": active(fakeUnit{}),
			"b.service": active(fakeUnit{requires: []string{"a.service"}}),
		},
		want: []string{"b.service"},
		says: []string{"stopping a.service would also stop b.service (it depends on a.service), which the policy does not let yield to alice"},
	}, {
		name: "every kind, and through a dependent",
		units: map[string]*fakeUnit{
			"a.service": active(fakeUnit{propagatesStopTo: []string{"e.service"}}),
			"b.service": active(fakeUnit{partOf: []string{"a.service"}}),
			"c.service": active(fakeUnit{bindsTo: []string{"b.service"}}),
			"d.service": active(fakeUnit{requisite: []string{"a.service"}}),
			"e.service": active(fakeUnit{}),
		},
		want: []string{"b.service", "c.service", "d.service", "e.service"},
		says: []string{"b.service (it depends on a.service)", "c.service (it depends on b.service)", "d.service (it depends on a.service)", "e.service (it depends on a.service)"},
	}, {
		name: "a helper nothing else needs",
		units: map[string]*fakeUnit{
			"a.service": active(fakeUnit{wants: []string{"h.service"}}),
			"h.service": active(fakeUnit{stopWhenUnneeded: true}),
		},
		want: []string{"h.service"},
		says: []string{"stopping a.service would also stop h.service (it depends on a.service)"},
	}, {
		name: "a unit portclaim cannot claim",
		units: map[string]*fakeUnit{
			"a.service": active(fakeUnit{}),
			"srv.mount": active(fakeUnit{requires: []string{"a.service"}}),
		},
		says: []string{"stopping a.service would also stop srv.mount (it depends on a.service); portclaim claims only .service and .socket units"},
	}} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, alice("a.service"), c.units)
			before := w.sys.String()
			w.wantRefused(w.yield("a.service"), before, c.want, c.says...)
		})
	}

	t.Run("a dependent that does not run", func(t *testing.T) {
		w := newWorld(t, alice("a.service"), map[string]*fakeUnit{
			"a.service": active(fakeUnit{}),
			"b.service": inactive(fakeUnit{requires: []string{"a.service"}}),
		})
		res := w.yield("a.service")
		if res.Refused != nil || outcome(t, res.Units, "a.service").Outcome != protocol.Stopped || len(res.Units) != 1 {
			t.Fatalf("%+v", res)
		}
		w.wantJobs("stop a.service")
		w.wantStates("a.service=inactive", "b.service=inactive")
		if r := w.records(); len(r) != 1 || r["a.service"].Claim.Method != claim.ByCondition {
			t.Errorf("records %v, want alice's claim on a.service alone", r)
		}
	})
}

// TestDependentsThePolicyAllowsGoDownWithTheirRecords: dependents the
// policy lets yield are claimed with the unit (each record naming the
// unit it went down with) and stopped first; a release brings them back
// after it.
func TestDependentsThePolicyAllowsGoDownWithTheirRecords(t *testing.T) {
	w := newWorld(t, alice("a.service", "b.service"), map[string]*fakeUnit{
		"a.service": active(fakeUnit{}),
		"b.service": active(fakeUnit{requires: []string{"a.service"}}),
	})
	res := w.yield("a.service")
	if res.Refused != nil || !res.PortsFree {
		t.Fatalf("%+v", res)
	}
	if b := outcome(t, res.Units, "b.service"); b.Outcome != protocol.Stopped || b.With != "a.service" || outcome(t, res.Units, "a.service").Outcome != protocol.Stopped {
		t.Errorf("%+v", res.Units)
	}
	w.wantJobs("stop b.service", "stop a.service")
	w.wantStates("a.service=inactive", "b.service=inactive")
	r := w.records()
	if len(r) != 2 || r["a.service"].Claim.With != "" || r["b.service"].Claim.With != "a.service" || r["b.service"].Claim.Prior.ActiveState != "active" {
		t.Fatalf("records %+v", r)
	}

	rel := w.release("a.service")
	if outcome(t, rel.Units, "a.service").Outcome != protocol.Restarted || outcome(t, rel.Units, "b.service").Outcome != protocol.Restarted {
		t.Errorf("%+v", rel.Units)
	}
	w.wantJobs("stop b.service", "stop a.service", "start a.service replace", "start b.service replace")
	w.wantStates("a.service=active", "b.service=active")
	if r := w.records(); len(r) > 0 {
		t.Errorf("records left after the release: %v", r)
	}
}

// TestAStopDoesNotTriggerUnitsOutsideThePolicy: a stop starts the
// unit's OnSuccess= (OnFailure= when its ExecStop= fails); the yield is
// refused when the policy does not let such a unit yield to the user,
// or when its start would stop a running unit (Conflicts=), pull in
// one the policy does not name, or run with a job mode that does more
// than start it. One that already runs starts nothing.
func TestAStopDoesNotTriggerUnitsOutsideThePolicy(t *testing.T) {
	for _, c := range []struct {
		name    string
		allowed []string
		units   map[string]*fakeUnit
		want    []string // refused for
		says    string
	}{{
		name:    "OnSuccess",
		allowed: []string{"a.service"},
		units: map[string]*fakeUnit{
			"a.service": active(fakeUnit{onSuccess: []string{"t.service"}}),
			"t.service": inactive(fakeUnit{}),
		},
		want: []string{"t.service"},
		says: "stopping a.service would start t.service (OnSuccess= of a.service), which the policy does not let yield to alice",
	}, {
		name:    "OnFailure",
		allowed: []string{"a.service"},
		units: map[string]*fakeUnit{
			"a.service": active(fakeUnit{onFailure: []string{"t.service"}}),
			"t.service": inactive(fakeUnit{}),
		},
		want: []string{"t.service"},
		says: "stopping a.service would start t.service (OnFailure= of a.service), which the policy does not let yield to alice",
	}, {
		name:    "Conflicts of what it starts",
		allowed: []string{"a.service", "t.service"},
		units: map[string]*fakeUnit{
			"a.service": active(fakeUnit{onSuccess: []string{"t.service"}}),
			"t.service": inactive(fakeUnit{}),
			"x.service": active(fakeUnit{conflicts: []string{"t.service"}}),
		},
		says: "stopping a.service would stop x.service (Conflicts=), which t.service (OnSuccess= of a.service) would start: nothing would record that",
	}, {
		name:    "what it starts pulls in",
		allowed: []string{"a.service", "t.service"},
		units: map[string]*fakeUnit{
			"a.service": active(fakeUnit{onFailure: []string{"t.service"}}),
			"t.service": inactive(fakeUnit{requires: []string{"r.service"}}),
			"r.service": inactive(fakeUnit{}),
		},
		says: "stopping a.service would start r.service (Requires= of t.service), which t.service (OnFailure= of a.service) pulls in and the policy does not name",
	}, {
		name:    "its job mode",
		allowed: []string{"a.service", "t.service"},
		units: map[string]*fakeUnit{
			"a.service": active(fakeUnit{onSuccess: []string{"t.service"}, onSuccessJobMode: "isolate"}),
			"t.service": inactive(fakeUnit{}),
		},
		says: "stopping a.service would start t.service with job mode isolate (OnSuccessJobMode= of a.service)",
	}} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, alice(c.allowed...), c.units)
			before := w.sys.String()
			w.wantRefused(w.yield("a.service"), before, c.want, c.says)
		})
	}

	t.Run("already running", func(t *testing.T) {
		w := newWorld(t, alice("a.service"), map[string]*fakeUnit{
			"a.service": active(fakeUnit{onSuccess: []string{"t.service"}}),
			"t.service": active(fakeUnit{}),
		})
		if res := w.yield("a.service"); res.Refused != nil || outcome(t, res.Units, "a.service").Outcome != protocol.Stopped {
			t.Fatalf("%+v", res)
		}
		w.wantStates("a.service=inactive", "t.service=active")
	})
}

// TestAReleaseStartsNothingOutsideThePolicy: a released unit's start
// pulls in what it needs that is down. A Wants= the policy does not name
// is left out: the unit alone starts, with job mode ignore-requirements,
// and the release says so. A Requires=, BindsTo= or Upholds= outside the
// policy keeps the claim (the unit may not work without it): the
// release waits, says why, and starts nothing. What the policy names
// comes back along, with job mode replace.
func TestAReleaseStartsNothingOutsideThePolicy(t *testing.T) {
	t.Run("Wants", func(t *testing.T) {
		w := newWorld(t, alice("a.service"), map[string]*fakeUnit{
			"a.service": active(fakeUnit{wants: []string{"w.service"}}),
			"w.service": inactive(fakeUnit{}),
		})
		w.yield("a.service")
		res := w.release("a.service")
		a := outcome(t, res.Units, "a.service")
		if a.Outcome != protocol.Restarted || !strings.Contains(a.Detail, "without w.service (Wants=), which is down and which the policy does not name") {
			t.Errorf("%+v", a)
		}
		w.wantJobs("stop a.service", "start a.service ignore-requirements")
		w.wantStates("a.service=active", "w.service=inactive")
		if r := w.records(); len(r) > 0 {
			t.Errorf("records left: %v", r)
		}
	})

	for _, via := range []string{"Requires", "BindsTo", "Upholds"} {
		t.Run(via, func(t *testing.T) {
			a := fakeUnit{}
			switch via {
			case "Requires":
				a.requires = []string{"r.service"}
			case "BindsTo":
				a.bindsTo = []string{"r.service"}
			case "Upholds":
				a.upholds = []string{"r.service"}
			}
			w := newWorld(t, alice("a.service"), map[string]*fakeUnit{"a.service": active(a), "r.service": active(fakeUnit{})})
			if res := w.yield("a.service"); res.Refused != nil {
				t.Fatalf("%+v", res)
			}
			w.sys.units["r.service"].state = "inactive" // root stops it meanwhile
			res := w.release("a.service")
			got := outcome(t, res.Units, "a.service")
			if got.Outcome != protocol.Deferred || !strings.Contains(got.Detail, "starting it would also start r.service ("+via+"= of a.service), which is down and which the policy does not let yield to alice") {
				t.Errorf("%+v", got)
			}
			w.wantJobs("stop a.service")
			w.wantStates("a.service=inactive", "r.service=inactive")
			r := w.records()["a.service"]
			if r.Releasing || r.Claim.GiveBack == nil || r.Claim.GiveBack.Why != got.Detail {
				t.Errorf("the claim %+v; want it kept, saying it is to be given back and why", r)
			}

			// Once root starts it, the next release gives a.service back.
			w.sys.units["r.service"].state = "active"
			if got := outcome(t, w.release("a.service").Units, "a.service"); got.Outcome != protocol.Restarted {
				t.Errorf("%+v", got)
			}
			w.wantStates("a.service=active")
		})
	}

	t.Run("what the policy names comes along", func(t *testing.T) {
		w := newWorld(t, alice("a.service", "f.service"), map[string]*fakeUnit{
			"a.service": active(fakeUnit{requires: []string{"f.service"}}),
			"f.service": active(fakeUnit{}),
		})
		w.yield("a.service")
		w.sys.units["f.service"].state = "inactive" // root stops it meanwhile
		if got := outcome(t, w.release("a.service").Units, "a.service"); got.Outcome != protocol.Restarted || strings.Contains(got.Detail, "without") {
			t.Errorf("%+v", got)
		}
		w.wantJobs("stop a.service", "start a.service replace")
		w.wantStates("a.service=active", "f.service=active")
	})
}
