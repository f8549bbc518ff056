// Package systemd asks systemd managers about unit state over D-Bus: the
// system manager on the system bus, and a user's manager on that user's
// bus. It asks once per manager for all units, whatever their number.
package systemd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	"github.com/portclaim/portclaim/pkg/host"
)

// Manager is a connection to one systemd manager.
type Manager struct {
	conn *sd.Conn
	// Calls counts D-Bus method calls made through Units, so tests can
	// hold the "once per manager" promise.
	Calls int
}

// System connects to the system manager over the system bus.
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

// UserBus returns where the user manager of uid listens: its session bus
// ($XDG_RUNTIME_DIR/bus, the default for the user itself, found even
// without DBUS_SESSION_BUS_ADDRESS), or for root asking about another user,
// that manager's private socket (systemd lets root in, dbus-daemon does
// not). It returns the socket's path, and whether it needs the bus Hello.
func UserBus(uid int, euid int, runtimeDir string) (path string, hello bool) {
	if runtimeDir == "" || euid != uid {
		runtimeDir = "/run/user/" + strconv.Itoa(uid)
	}
	if euid == 0 && uid != 0 {
		return filepath.Join(runtimeDir, "systemd/private"), false
	}
	return filepath.Join(runtimeDir, "bus"), true
}

// User connects to the user manager of uid.
func User(ctx context.Context, uid int) (*Manager, error) {
	path, hello := UserBus(uid, os.Geteuid(), os.Getenv("XDG_RUNTIME_DIR"))
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("the user manager of uid %d is not running (%s does not exist; is lingering on? `loginctl enable-linger`)", uid, path)
	}
	c, err := sd.NewConnection(once(func() (*dbus.Conn, error) {
		conn, err := dbus.Dial("unix:path="+path, dbus.WithContext(ctx))
		if err != nil {
			return nil, err
		}
		return authHello(conn, hello)
	}))
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, fs.ErrNotExist) {
			// The runtime directory outlives its manager for a moment.
			return nil, fmt.Errorf("the user manager of uid %d is not running (nothing answers at %s; is lingering on? `loginctl enable-linger`)", uid, path)
		}
		return nil, fmt.Errorf("connecting to the user manager of uid %d at %s: %w", uid, path, err)
	}
	return &Manager{conn: c}, nil
}

// Close ends the connection.
func (m *Manager) Close() { m.conn.Close() }

// Units returns the state of the named units in one call, however many
// there are. It asks with ListUnitsByPatterns, which answers from the
// units systemd has loaded: ListUnitsByNames would load every stopped,
// unreferenced unit from disk to answer (80 ms for 500 units on the test
// machine). A unit systemd has not loaded is stopped and wanted by
// nothing that runs; it is reported inactive with an empty LoadState.
// The unit file state (UnitFileState, FragmentPath) costs a second call,
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
			out[s.Name] = host.Unit{Name: s.Name, LoadState: s.LoadState, ActiveState: s.ActiveState}
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

// AddTriggers looks up, in one call, the .socket units that activate the
// named services (foo.socket for foo.service, systemd.socket(5)); for each
// that exists it sets the service's TriggeredBy and adds the socket's own
// state to out.
func (m *Manager) AddTriggers(ctx context.Context, services []string, out map[string]host.Unit) error {
	var socks []string
	for _, n := range services {
		if s := socketOf(n); s != "" && !slices.Contains(socks, s) {
			if _, known := out[s]; !known {
				socks = append(socks, s)
			}
		}
	}
	if err := m.list(ctx, socks, out); err != nil {
		return err
	}
	for _, n := range services {
		if sock, ok := out[socketOf(n)]; ok && sock.Exists() {
			u := out[n]
			u.TriggeredBy = []string{sock.Name}
			out[n] = u
		}
	}
	return nil
}

// FillFileStates adds UnitFileState and FragmentPath to the units in out
// named by names (one call), for the record a claim keeps of them.
func (m *Manager) FillFileStates(ctx context.Context, names []string, out map[string]host.Unit) error {
	return m.fileStates(ctx, names, out)
}

// fileStates fills in UnitFileState and FragmentPath for names.
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

// socketOf names the socket unit that activates a service by default
// (systemd.socket(5): foo.socket activates foo.service).
func socketOf(name string) string {
	if base, ok := strings.CutSuffix(name, ".service"); ok {
		return base + ".socket"
	}
	return ""
}

// Conditions returns the unit's start conditions (the Conditions property).
func (m *Manager) Conditions(ctx context.Context, unit string) ([]host.Condition, error) {
	p, err := m.conn.GetUnitPropertyContext(ctx, unit, "Conditions")
	if err != nil {
		return nil, fmt.Errorf("reading %s's conditions: %w", unit, err)
	}
	var raw [][]any
	if err := dbus.Store([]any{p.Value.Value()}, &raw); err != nil {
		return nil, fmt.Errorf("reading %s's conditions: %w", unit, err)
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
	return out, nil
}

// JobResult is how a start or stop job ended: "done", "canceled",
// "timeout", "failed", "dependency", "skipped"; "" when it did not end in
// time.
type JobResult string

// Stop stops unit and waits up to wait for the job to end.
func (m *Manager) Stop(ctx context.Context, unit string, wait time.Duration) (JobResult, error) {
	return m.job(ctx, wait, func(ch chan<- string) (int, error) {
		return m.conn.StopUnitContext(ctx, unit, "replace", ch)
	})
}

// Start starts unit and waits up to wait for the job to end.
func (m *Manager) Start(ctx context.Context, unit string, wait time.Duration) (JobResult, error) {
	return m.job(ctx, wait, func(ch chan<- string) (int, error) {
		return m.conn.StartUnitContext(ctx, unit, "replace", ch)
	})
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
		return "", ctx.Err()
	}
}

// Reload makes the manager re-read unit files (daemon-reload).
func (m *Manager) Reload(ctx context.Context) error { return m.conn.ReloadContext(ctx) }
