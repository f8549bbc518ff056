package yield

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"time"

	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/systemd"
)

// fakeSystemd is a model of systemd's units, in memory, for the tests of
// what yield asks of it: each unit's state and what it says of others,
// and every job asked. Its jobs do what systemd.unit(5) says they do, as
// far as a yield or a release can see: a stop takes along the active
// units that depend on the unit (Requires=, Requisite=, BindsTo=,
// PartOf=, PropagatesStopTo=) and the StopWhenUnneeded= helpers nothing
// needs any more, and starts OnSuccess= (OnFailure= when the stop fails);
// a start with job mode replace stops what conflicts with the unit and
// starts what it pulls in (Requires=, BindsTo=, Wants=, Upholds=); one
// with ignore-requirements starts the unit alone (Upholds= still
// applies); a unit whose ConditionPathExists=!PATH finds PATH is skipped.
type fakeSystemd struct {
	units map[string]*fakeUnit
	// jobs are the jobs asked, in order: "stop a.service", "start
	// a.service replace", "start a.service ignore-requirements".
	jobs    []string
	reloads int
}

// fakeUnit is one unit of the model. Its relations name other units by
// their own names.
type fakeUnit struct {
	state   string // ActiveState: active, inactive, failed
	load    string // LoadState; "": loaded
	aliases []string

	requires, requisite, wants, bindsTo, upholds, partOf, propagatesStopTo []string
	conflicts                                                              []string
	onSuccess, onFailure                                                   []string
	onSuccessJobMode, onFailureJobMode                                     string
	after, before                                                          []string
	triggeredBy                                                            []string // the sockets that activate it
	stopWhenUnneeded                                                       bool
	queued                                                                 bool // a job of root's waits for it
	conditions                                                             []host.Condition

	// stopResult and startResult are how its stop and start jobs end
	// when not "done": the unit is then left failed (or, for a stop that
	// is canceled, as it was).
	stopResult, startResult systemd.JobResult
	// failsAfterStart: its start job is done, and the unit fails a
	// moment later (a simple service whose port is taken).
	failsAfterStart bool
}

func (u *fakeUnit) active() bool { return u.state == "active" }

var _ Systemd = (*fakeSystemd)(nil)

// names lists the model's units in a stable order.
func (m *fakeSystemd) names() []string {
	out := make([]string, 0, len(m.units))
	for n := range m.units {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// lookup finds a unit by its name or an alias; "" when not loaded.
func (m *fakeSystemd) lookup(name string) (string, *fakeUnit) {
	if u, ok := m.units[name]; ok {
		return name, u
	}
	for _, n := range m.names() {
		if slices.Contains(m.units[n].aliases, name) {
			return n, m.units[n]
		}
	}
	return "", nil
}

// state is the ActiveState of a unit ("inactive" for one not loaded).
func (m *fakeSystemd) state(name string) string {
	if _, u := m.lookup(name); u != nil {
		return u.state
	}
	return "inactive"
}

// those lists the units whose relation, as rel reads it, names name.
func (m *fakeSystemd) those(name string, rel func(*fakeUnit) []string) []string {
	var out []string
	for _, n := range m.names() {
		if slices.Contains(rel(m.units[n]), name) {
			out = append(out, n)
		}
	}
	return out
}

// stopsWith is what systemd stops along with name: RequiredBy,
// RequisiteOf, BoundBy, ConsistsOf and its PropagatesStopTo.
func (m *fakeSystemd) stopsWith(name string, u *fakeUnit) []string {
	out := m.those(name, func(o *fakeUnit) []string { return o.requires })
	out = append(out, m.those(name, func(o *fakeUnit) []string { return o.requisite })...)
	out = append(out, m.those(name, func(o *fakeUnit) []string { return o.bindsTo })...)
	out = append(out, m.those(name, func(o *fakeUnit) []string { return o.partOf })...)
	return dedup(append(out, u.propagatesStopTo...))
}

func dedup(in []string) []string {
	var out []string
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func (m *fakeSystemd) Inspect(_ context.Context, name string) (systemd.Detail, error) {
	own, u := m.lookup(name)
	if u == nil {
		return systemd.Detail{Unit: host.Unit{Name: name, LoadState: "not-found", ActiveState: "inactive"}, Names: []string{name}}, nil
	}
	load := u.load
	if load == "" {
		load = "loaded"
	}
	d := systemd.Detail{
		Unit:             host.Unit{Name: name, LoadState: load, ActiveState: u.state, UnitFileState: "enabled", TriggeredBy: u.triggeredBy},
		Conditions:       u.conditions,
		StopsWith:        m.stopsWith(own, u),
		Needs:            dedup(slices.Concat(u.requires, u.requisite, u.wants, u.bindsTo)),
		StopWhenUnneeded: u.stopWhenUnneeded,
		Conflicts:        dedup(append(slices.Clone(u.conflicts), m.those(own, func(o *fakeUnit) []string { return o.conflicts })...)),
		OnSuccess:        u.onSuccess, OnFailure: u.onFailure,
		OnSuccessJobMode: u.onSuccessJobMode, OnFailureJobMode: u.onFailureJobMode,
		Names: append([]string{own}, u.aliases...),
		After: u.after, Before: u.before,
		Queued: u.queued,
	}
	for _, p := range []struct {
		via   string
		units []string
	}{{"Requires", u.requires}, {"BindsTo", u.bindsTo}, {"Upholds", u.upholds}, {"Wants", u.wants}} {
		for _, n := range p.units {
			if !slices.ContainsFunc(d.Pulls, func(q systemd.Pull) bool { return q.Unit == n }) {
				d.Pulls = append(d.Pulls, systemd.Pull{Unit: n, Via: p.via})
			}
		}
	}
	return d, nil
}

func (m *fakeSystemd) Stop(_ context.Context, name string, _ time.Duration) (systemd.JobResult, error) {
	m.jobs = append(m.jobs, "stop "+name)
	own, u := m.lookup(name)
	if u == nil {
		return "done", nil
	}
	switch u.stopResult {
	case "":
	case "canceled":
		return u.stopResult, nil
	default:
		u.state = "failed" // an ExecStop= that fails
		m.trigger(u.onFailure)
		return u.stopResult, nil
	}
	m.stop(own)
	return "done", nil
}

// stop stops an active unit, what depends on it, and the helpers it
// leaves unneeded; those that go inactive start their OnSuccess=.
func (m *fakeSystemd) stop(name string) {
	u := m.units[name]
	if u == nil || !u.active() {
		return
	}
	u.state = "inactive"
	for _, n := range m.stopsWith(name, u) {
		m.stop(n)
	}
	for _, n := range slices.Concat(u.requires, u.requisite, u.wants, u.bindsTo) {
		if h := m.units[n]; h != nil && h.stopWhenUnneeded && !m.needed(n) {
			m.stop(n)
		}
	}
	m.trigger(u.onSuccess)
}

// needed reports whether an active unit needs name.
func (m *fakeSystemd) needed(name string) bool {
	for _, n := range m.names() {
		u := m.units[n]
		if u.active() && slices.Contains(slices.Concat(u.requires, u.requisite, u.wants, u.bindsTo), name) {
			return true
		}
	}
	return false
}

// trigger starts units as a stop's OnSuccess= or OnFailure= does.
func (m *fakeSystemd) trigger(units []string) {
	for _, n := range units {
		m.start(n, true)
	}
}

func (m *fakeSystemd) Start(_ context.Context, name string, _ time.Duration) (systemd.JobResult, error) {
	m.jobs = append(m.jobs, "start "+name+" replace")
	return m.start(name, true), nil
}

func (m *fakeSystemd) StartEach(_ context.Context, names []string, _ time.Duration) ([]systemd.JobResult, error) {
	out := make([]systemd.JobResult, len(names))
	for i, n := range names {
		m.jobs = append(m.jobs, "start "+n+" ignore-requirements")
		out[i] = m.start(n, false)
	}
	return out, nil
}

// start starts name; pull: as job mode replace does (what it conflicts
// with stops, what it pulls in starts), else as ignore-requirements.
func (m *fakeSystemd) start(name string, pull bool) systemd.JobResult {
	own, u := m.lookup(name)
	switch {
	case u == nil || u.load == "masked" || u.load == "not-found":
		return "failed"
	case u.active():
		return "done"
	case u.startResult != "":
		u.state = "failed"
		return u.startResult
	case m.skipped(u):
		return "done" // its condition is not met: skipped, and stays down
	}
	if pull {
		for _, c := range dedup(append(slices.Clone(u.conflicts), m.those(own, func(o *fakeUnit) []string { return o.conflicts })...)) {
			m.stop(c)
		}
		for _, n := range slices.Concat(u.requires, u.bindsTo, u.wants) {
			m.start(n, true)
		}
	}
	u.state = "active"
	if u.failsAfterStart {
		u.state = "failed"
	}
	for _, n := range u.upholds {
		m.start(n, true)
	}
	return "done"
}

// skipped reports whether a condition of u keeps it from starting: a
// ConditionPathExists=!PATH whose PATH exists (a claim's record).
func (m *fakeSystemd) skipped(u *fakeUnit) bool {
	for _, c := range u.conditions {
		if c.Type != "ConditionPathExists" {
			continue
		}
		_, err := os.Lstat(c.Param)
		if exists := err == nil; exists == c.Negate {
			return true
		}
	}
	return false
}

func (m *fakeSystemd) Reload(context.Context) error {
	m.reloads++
	return nil
}

// String lists the units' states, for failure messages.
func (m *fakeSystemd) String() string {
	s := ""
	for _, n := range m.names() {
		s += fmt.Sprintf("%s=%s ", n, m.units[n].state)
	}
	return s + fmt.Sprintf("jobs %q", m.jobs)
}
