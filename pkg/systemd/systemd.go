// Package systemd is portclaim's D-Bus client to systemd: the system
// manager on the system bus, and a user's manager on that user's bus.
// Detection asks once per manager for the state of all units, whatever
// their number (and the system manager once more for the unit files of
// stopped ones); the root side asks about the few units it acts on, and
// stops and starts them with job mode "replace" (and starts them with
// "ignore-requirements" when what a start would pull in must be left
// out), never another.
//
// Every connection lives as long as the context it was dialed with, the
// handshake included: a bus that accepts and never answers ends the run
// at its deadline, not never.
package systemd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"

	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/unitname"
)

// Manager is a connection to one systemd manager.
type Manager struct {
	conn *sd.Conn
	// Calls counts D-Bus method calls made through Units, so tests can
	// hold the "once per manager" promise.
	Calls int
}

// System connects to the system manager over the system bus. The
// connection is closed when ctx ends.
func System(ctx context.Context) (*Manager, error) {
	c, err := sd.NewConnection(once(func() (*dbus.Conn, error) {
		conn, err := dbus.SystemBusPrivate(dbus.WithContext(ctx))
		if err != nil {
			return nil, err
		}
		return authHello(conn, true)
	}))
	if err != nil {
		return nil, fmt.Errorf("connecting to the system bus: %w", err)
	}
	return &Manager{conn: c}, nil
}

// SystemOutliving connects to the system manager with the handshake
// bounded by ctx, and returns a connection that lasts until close, not
// until ctx ends (a connection from System ends with the context it was
// dialed with): a yield's or a release's changes, and their rollback,
// outlive the request's deadline, each bounded by a budget of its own.
func SystemOutliving(ctx context.Context) (sys *Manager, close func(), err error) {
	life, end := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, end)
	sys, err = System(life)
	if !stop() && err == nil {
		// ctx ended first: the connection is closed, or closes.
		sys.Close()
		err = fmt.Errorf("connecting to the system bus: %w", ctx.Err())
	}
	if err != nil {
		end()
		return nil, nil, err
	}
	return sys, func() { sys.Close(); end() }, nil
}

// once makes go-systemd use one bus connection for its calls and for the
// job signals, instead of dialing (and authenticating) two: a check runs
// in a few milliseconds, and each handshake costs one.
func once(dial func() (*dbus.Conn, error)) func() (*dbus.Conn, error) {
	var conn *dbus.Conn
	return func() (*dbus.Conn, error) {
		if conn != nil {
			return conn, nil
		}
		var err error
		conn, err = dial()
		return conn, err
	}
}

func authHello(conn *dbus.Conn, hello bool) (*dbus.Conn, error) {
	if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		conn.Close()
		return nil, err
	}
	if hello {
		if err := conn.Hello(); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return conn, nil
}

// Close ends the connection.
func (m *Manager) Close() { m.conn.Close() }

// Units returns the state of the named units in one call, however many
// there are. It asks with ListUnitsByPatterns, which answers from the
// units systemd has loaded: ListUnitsByNames would load every stopped,
// unreferenced unit from disk to answer (80 ms for 500 units on the test
// machine). A unit systemd has not loaded is stopped and wanted by
// nothing that runs; it is reported inactive with an empty LoadState.
// The unit file state (UnitFileState) costs a second call,
// ListUnitFilesByPatterns, made only for the units needFile picks (nil:
// none) and only when it picks any.
func (m *Manager) Units(ctx context.Context, names []string, needFile func(host.Unit) bool) (map[string]host.Unit, error) {
	out := make(map[string]host.Unit, len(names))
	if err := m.list(ctx, names, out); err != nil {
		return nil, err
	}
	var fileQuery []string
	for _, n := range names {
		if needFile != nil && needFile(out[n]) {
			fileQuery = append(fileQuery, n)
		}
	}
	if err := m.fileStates(ctx, fileQuery, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (m *Manager) list(ctx context.Context, names []string, out map[string]host.Unit) error {
	if len(names) == 0 {
		return nil
	}
	for _, n := range names {
		out[n] = host.Unit{Name: n, ActiveState: "inactive"}
	}
	m.Calls++
	st, err := m.conn.ListUnitsByPatternsContext(ctx, nil, patterns(names))
	if err != nil {
		return fmt.Errorf("ListUnitsByPatterns: %w", err)
	}
	for _, s := range st {
		if _, asked := out[s.Name]; asked {
			// A user's manager is the user's to answer as it likes.
			out[s.Name] = host.Unit{Name: s.Name, LoadState: host.Printable(s.LoadState), ActiveState: host.Printable(s.ActiveState)}
		}
	}
	return nil
}

// patterns escapes unit names for systemd's fnmatch: a unit name's only
// special character is the backslash of its \xNN escapes.
func patterns(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.ReplaceAll(n, `\`, `\\`)
	}
	return out
}

// SocketsFor lists the .socket units that would activate services by
// name (foo.socket for foo.service, systemd.socket(5)), each once, to ask
// Units about with them.
func SocketsFor(services []string) []string {
	var socks []string
	for _, n := range services {
		if s := unitname.SocketFor(n); s != "" && !slices.Contains(socks, s) {
			socks = append(socks, s)
		}
	}
	return socks
}

// LinkTriggers sets, for each of services whose socket (SocketsFor)
// Units found to exist, the service's TriggeredBy to it.
func LinkTriggers(services []string, units map[string]host.Unit) {
	for _, n := range services {
		if sock, ok := units[unitname.SocketFor(n)]; ok && sock.Exists() {
			u := units[n]
			u.TriggeredBy = []string{sock.Name}
			units[n] = u
		}
	}
}

// fileStates fills in UnitFileState for names.
func (m *Manager) fileStates(ctx context.Context, names []string, out map[string]host.Unit) error {
	if len(names) == 0 {
		return nil
	}
	m.Calls++
	files, err := m.conn.ListUnitFilesByPatternsContext(ctx, nil, names)
	if err != nil {
		return fmt.Errorf("ListUnitFilesByPatterns: %w", err)
	}
	for _, f := range files {
		name := filepath.Base(f.Path)
		if u, ok := out[name]; ok {
			u.UnitFileState = f.Type
			out[name] = u
		}
	}
	return nil
}

// Detail is what the root side reads about a unit it may act on.
type Detail struct {
	host.Unit
	Conditions []host.Condition
	// StopsWith are the units systemd stops when this one stops
	// (systemd.unit(5): those that Requires=, Requisite=, BindsTo= or are
	// PartOf= it, and its PropagatesStopTo=), active or not.
	StopsWith []string
	// Needs are the units this one pulls in (Requires=, Requisite=,
	// Wants=, BindsTo=): one with StopWhenUnneeded= stops once nothing
	// that needs it runs.
	Needs            []string
	StopWhenUnneeded bool
	// Conflicts are the units a start of this one stops (Conflicts=,
	// and the units that conflict with it).
	Conflicts []string
	// Pulls are the units a start of this one starts too (Requisite=
	// only checks).
	Pulls []Pull
	// OnSuccess and OnFailure are the units systemd starts when this one
	// stops (goes inactive), or fails (an ExecStop= that fails), with
	// their job modes.
	OnSuccess, OnFailure               []string
	OnSuccessJobMode, OnFailureJobMode string
	// Names are every name of the unit: its own and its aliases.
	Names []string
	// After and Before order its jobs against others'.
	After, Before []string
	// Queued: systemd has a job queued for this unit; a stop with job
	// mode "replace" would cancel it.
	Queued bool
}

// Pull is a unit a start of another starts too, and the property that
// says so: Requires, BindsTo, Wants or Upholds.
type Pull struct{ Unit, Via string }

// Skippable reports whether a start with job mode "ignore-requirements"
// leaves the unit out and may still work: a Wants=. Without what it
// Requires= or BindsTo= a unit may not work, and what it Upholds=
// systemd starts whatever the job mode.
func (p Pull) Skippable() bool { return p.Via == "Wants" }

// The Unit properties that name other units, by what they mean to a stop
// or a start of this one.
var (
	stopPropagation = []string{"RequiredBy", "RequisiteOf", "BoundBy", "ConsistsOf", "PropagatesStopTo"}
	needs           = []string{"Requires", "Requisite", "Wants", "BindsTo"}
	conflicts       = []string{"Conflicts", "ConflictedBy"}
	pulls           = []string{"Requires", "BindsTo", "Upholds", "Wants"}
)

// Inspect reads one unit's state, unit file state, conditions and the
// units a stop or start of it reaches, in one call.
func (m *Manager) Inspect(ctx context.Context, unit string) (Detail, error) {
	m.Calls++
	props, err := m.conn.GetUnitPropertiesContext(ctx, unit)
	if err != nil {
		return Detail{}, fmt.Errorf("reading %s: %w", unit, err)
	}
	str := func(k string) string { s, _ := props[k].(string); return s }
	units := func(keys []string) []string {
		var out []string
		for _, k := range keys {
			if us, ok := props[k].([]string); ok {
				for _, u := range us {
					if !slices.Contains(out, u) {
						out = append(out, u)
					}
				}
			}
		}
		return out
	}
	d := Detail{Unit: host.Unit{Name: unit, LoadState: str("LoadState"), ActiveState: str("ActiveState"), UnitFileState: str("UnitFileState")},
		StopsWith: units(stopPropagation), Needs: units(needs), Conflicts: units(conflicts),
		OnSuccess: units([]string{"OnSuccess"}), OnFailure: units([]string{"OnFailure"}),
		OnSuccessJobMode: str("OnSuccessJobMode"), OnFailureJobMode: str("OnFailureJobMode"),
		Names: units([]string{"Names"}), After: units([]string{"After"}), Before: units([]string{"Before"})}
	for _, via := range pulls {
		for _, u := range units([]string{via}) {
			if !slices.ContainsFunc(d.Pulls, func(p Pull) bool { return p.Unit == u }) {
				d.Pulls = append(d.Pulls, Pull{Unit: u, Via: via})
			}
		}
	}
	d.StopWhenUnneeded, _ = props["StopWhenUnneeded"].(bool)
	// Every socket that activates it, whatever its name (Service= in a
	// socket unit need not follow foo.socket -> foo.service).
	if triggered, ok := props["TriggeredBy"].([]string); ok {
		for _, t := range triggered {
			if unitname.Type(t) == "socket" {
				d.TriggeredBy = append(d.TriggeredBy, t)
			}
		}
	}
	if job, ok := props["Job"].([]any); ok && len(job) > 0 {
		id, _ := job[0].(uint32)
		d.Queued = id != 0
	}
	if raw, ok := props["Conditions"]; ok {
		d.Conditions = conditions(raw)
	}
	return d, nil
}

// conditions reads the Conditions property, a(sbbsi).
func conditions(v any) []host.Condition {
	var raw [][]any
	if err := dbus.Store([]any{v}, &raw); err != nil {
		return nil
	}
	var out []host.Condition
	for _, c := range raw {
		if len(c) < 4 {
			continue
		}
		typ, _ := c[0].(string)
		trigger, _ := c[1].(bool)
		negate, _ := c[2].(bool)
		param, _ := c[3].(string)
		out = append(out, host.Condition{Type: typ, Trigger: trigger, Negate: negate, Param: param})
	}
	return out
}

// JobResult is how a start or stop job ended: "done", "canceled",
// "timeout", "failed", "dependency", "skipped"; "" when it did not end in
// time (the wait, or the context, ended first: systemd goes on with it).
type JobResult string

// Stop stops unit (job mode "replace": never "triggering", which would
// stop the units that trigger it too, nor "flush" or "isolate") and waits
// up to wait for the job to end.
func (m *Manager) Stop(ctx context.Context, unit string, wait time.Duration) (JobResult, error) {
	return m.job(ctx, wait, func(ch chan<- string) (int, error) {
		return m.conn.StopUnitContext(ctx, unit, "replace", ch)
	})
}

// Start starts unit (job mode "replace") and waits up to wait for the job
// to end.
func (m *Manager) Start(ctx context.Context, unit string, wait time.Duration) (JobResult, error) {
	return m.job(ctx, wait, func(ch chan<- string) (int, error) {
		return m.conn.StartUnitContext(ctx, unit, "replace", ch)
	})
}

// StartEach starts exactly units, each with job mode
// "ignore-requirements" (nothing else is pulled in, nor stopped), in
// the order given: a job waits for those of the units it is ordered
// after (After=) only if they are queued before it. It waits up to wait
// for every job, and returns how each ended ("" not in time), or the
// error enqueueing one (those enqueued before go on).
func (m *Manager) StartEach(ctx context.Context, units []string, wait time.Duration) ([]JobResult, error) {
	chans := make([]chan string, len(units))
	for i, u := range units {
		chans[i] = make(chan string, 1)
		if _, err := m.conn.StartUnitContext(ctx, u, "ignore-requirements", chans[i]); err != nil {
			return nil, fmt.Errorf("starting %s: %w", u, err)
		}
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	out := make([]JobResult, len(units))
	for i, ch := range chans {
		select {
		case r := <-ch:
			out[i] = JobResult(r)
		case <-timer.C:
			return out, nil
		case <-ctx.Done():
			return out, nil
		}
	}
	return out, nil
}

func (m *Manager) job(ctx context.Context, wait time.Duration, enqueue func(chan<- string) (int, error)) (JobResult, error) {
	ch := make(chan string, 1)
	if _, err := enqueue(ch); err != nil {
		return "", err
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case r := <-ch:
		return JobResult(r), nil
	case <-timer.C:
		return "", nil
	case <-ctx.Done():
		// Like the wait's end: the job is queued and goes on, whatever
		// becomes of it is not known yet; not a failure of it.
		return "", nil
	}
}

// Reload makes the manager re-read unit files (daemon-reload).
func (m *Manager) Reload(ctx context.Context) error { return m.conn.ReloadContext(ctx) }

// ResetFailed clears a unit's failed state and its start rate limit, so
// that a start after repeated failures is not refused.
func (m *Manager) ResetFailed(ctx context.Context, unit string) error {
	m.Calls++
	return m.conn.ResetFailedUnitContext(ctx, unit)
}

// StartsByItself reports whether the manager starts unit by itself: its
// unit file is enabled, or a unit wants, requires or upholds it (a unit
// a generator writes, as podman's quadlet does from home.nix, is wanted
// by default.target through the generator's links, and its unit file
// state is "generated").
func (m *Manager) StartsByItself(ctx context.Context, unit string) (bool, error) {
	m.Calls++
	props, err := m.conn.GetUnitPropertiesContext(ctx, unit)
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", unit, err)
	}
	if state, _ := props["UnitFileState"].(string); strings.HasPrefix(state, "enabled") {
		return true, nil
	}
	for _, k := range []string{"WantedBy", "RequiredBy", "UpheldBy"} {
		if us, ok := props[k].([]string); ok && len(us) > 0 {
			return true, nil
		}
	}
	return false, nil
}
