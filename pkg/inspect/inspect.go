// Package inspect gathers what portclaim looks at — the socket tables, the
// processes behind the sockets in the way, the state of the units involved —
// and hands it to package conflict. It is the I/O edge: it decides nothing.
package inspect

import (
	"context"
	"fmt"
	"os/user"
	"slices"
	"strconv"
	"time"

	"github.com/portclaim/portclaim/pkg/attrib"
	"github.com/portclaim/portclaim/pkg/bind"
	"github.com/portclaim/portclaim/pkg/conflict"
	"github.com/portclaim/portclaim/pkg/manifest"
	"github.com/portclaim/portclaim/pkg/procs"
	"github.com/portclaim/portclaim/pkg/sockets"
	"github.com/portclaim/portclaim/pkg/units"
)

// Options say where to look and for whom.
type Options struct {
	ProcRoot string        // "/proc"
	UID      int           // the user whose user units the manifest declares
	Timeout  time.Duration // for each manager's D-Bus conversation
}

// Result is what one check saw.
type Result struct {
	UserName string
	Findings []conflict.Finding
	// UserUnits is the state of the declared user units; nil when the
	// user manager could not be asked.
	UserUnits map[string]units.Unit
	// Notes explain a partial view that is still useful (no user manager).
	Notes []string
	// Broken lists what made the view unusable: no socket table, no
	// system bus. portclaim exits 3 when it is not empty.
	Broken []string
	// System is the state of the system units involved; nil when the
	// system manager could not be asked.
	System map[string]units.Unit
	// Sockets is every socket of this run's one read of the tables.
	Sockets []sockets.Socket
	// DBusCalls counts D-Bus method calls, per manager.
	DBusCalls map[string]int
}

// Session holds the connections to both managers for one run, so that
// check, resolve and release share them.
type Session struct {
	Opt            Options
	System, User   *units.Manager // nil when not reachable
	SysErr, UsrErr error
}

// Open connects to the system manager and to the user manager of opt.UID.
func Open(ctx context.Context, opt Options) *Session {
	// The connections live as long as ctx (godbus closes a connection
	// when its dial context ends); each call is bounded by opt.Timeout.
	s := &Session{Opt: opt}
	s.System, s.SysErr = units.System(ctx)
	s.User, s.UsrErr = units.User(ctx, opt.UID)
	return s
}

// Close ends both connections.
func (s *Session) Close() {
	if s.System != nil {
		s.System.Close()
	}
	if s.User != nil {
		s.User.Close()
	}
}

// Check looks at this machine for the manifest's claims. keptDown lists
// the system units that this user's claims keep from starting.
func (s *Session) Check(ctx context.Context, m manifest.Manifest, keptDown map[string]bool) Result {
	opt := s.Opt
	res := Result{UserName: NameOf(uint32(opt.UID)), DBusCalls: map[string]int{}}
	tab, err := sockets.Read(opt.ProcRoot)
	if err != nil {
		res.Broken = append(res.Broken, err.Error())
	}
	res.Sockets = tab.Sockets
	inWay := conflict.InWay(tab.Sockets, m)
	holders := map[uint64]attrib.Holder{}
	if len(inWay) > 0 {
		holders, err = attribute(opt, inWay, m)
		if err != nil {
			res.Broken = append(res.Broken, err.Error())
		}
	}

	sysNames, userNames := unitNames(m, holders, uint32(opt.UID))
	// The unit file state only matters for a stopped unit that may start
	// at boot (latent) and that no claim keeps down.
	latentCandidate := func(u units.Unit) bool { return u.Exists() && !u.Active() && !keptDown[u.Name] }
	system, err := ask(ctx, opt, s.System, s.SysErr, sysNames, latentCandidate)
	if err != nil {
		res.Broken = append(res.Broken, fmt.Sprintf("%v: system unit state is unknown, so no unit can be checked or resolved", err))
	}
	res.System = system
	res.UserUnits, err = ask(ctx, opt, s.User, s.UsrErr, userNames, nil)
	if err != nil {
		res.Notes = append(res.Notes, fmt.Sprintf("%v; %s's user units are not checked, the system side is", err, res.UserName))
	}
	if s.System != nil {
		res.DBusCalls["system"] = s.System.Calls
	}
	if s.User != nil {
		res.DBusCalls["user"] = s.User.Calls
	}
	res.Findings = conflict.Classify(conflict.Input{
		Manifest: m, UserUID: uint32(opt.UID), UserName: res.UserName,
		Sockets: inWay, Holders: holders, System: system, Claimed: keptDown,
		NameOf: NameOf,
	})
	return res
}

// Held is one socket on a port, with its holder.
type Held struct {
	Socket sockets.Socket
	Holder attrib.Holder
}

// Who lists every socket bound to port (proto "" for both). expected
// names the units that should hold it (the manifest's, a claim's): their
// processes are looked at first, and unprivileged they make a root-owned
// socket's holder probable rather than unknown.
func Who(opt Options, port uint16, proto bind.Proto, expected []procs.Unit) ([]Held, error) {
	tab, err := sockets.Read(opt.ProcRoot)
	if err != nil {
		return nil, err
	}
	var on []sockets.Socket
	for _, s := range tab.Sockets {
		if s.Port == port && (proto == "" || s.Proto == proto) {
			on = append(on, s)
		}
	}
	if len(on) == 0 {
		return nil, nil
	}
	ps, err := procs.Scan(opt.ProcRoot)
	if err != nil {
		return nil, err
	}
	var out []Held
	for _, s := range on {
		out = append(out, Held{Socket: s, Holder: attrib.Attribute(s, ps, expected, fdLookup(opt.ProcRoot))})
	}
	return out, nil
}

func attribute(opt Options, inWay []sockets.Socket, m manifest.Manifest) (map[uint64]attrib.Holder, error) {
	ps, err := procs.Scan(opt.ProcRoot)
	if err != nil {
		return nil, err
	}
	out := map[uint64]attrib.Holder{}
	for _, s := range inWay {
		out[s.Inode] = attrib.Attribute(s, ps, expected(s, m, uint32(opt.UID)), fdLookup(opt.ProcRoot))
	}
	return out, nil
}

// Expected lists the units the manifest says may hold a socket on port.
func Expected(m manifest.Manifest, port uint16, proto bind.Proto, uid uint32) []procs.Unit {
	var out []procs.Unit
	for _, p := range []bind.Proto{bind.TCP, bind.UDP} {
		if proto == "" || proto == p {
			out = append(out, expected(sockets.Socket{Endpoint: bind.Endpoint{Proto: p, Port: port}}, m, uid)...)
		}
	}
	return out
}

// expected lists the units the manifest says may hold s: the claiming
// service's system units, then its user units.
func expected(s sockets.Socket, m manifest.Manifest, uid uint32) []procs.Unit {
	var out []procs.Unit
	for _, svc := range m.Services {
		for _, p := range svc.Ports {
			if !bind.Overlap(p, s.Endpoint) {
				continue
			}
			for _, u := range svc.SystemUnits {
				out = append(out, procs.Unit{Name: u})
			}
			for _, u := range svc.UserUnits {
				out = append(out, procs.Unit{User: true, UserUID: uid, Name: u})
			}
		}
	}
	return out
}

func fdLookup(procRoot string) attrib.FDLookup {
	return func(pid int, inode uint64) (bool, error) { return procs.HasSocket(procRoot, pid, inode) }
}

// unitNames are the units to ask each manager about: the declared ones and
// the holders found.
func unitNames(m manifest.Manifest, holders map[uint64]attrib.Holder, uid uint32) (system, user []string) {
	add := func(list []string, n string) []string {
		if n == "" || slices.Contains(list, n) {
			return list
		}
		return append(list, n)
	}
	for _, svc := range m.Services {
		for _, u := range svc.SystemUnits {
			system = add(system, u)
		}
		for _, u := range svc.UserUnits {
			user = add(user, u)
		}
	}
	for _, h := range holders {
		switch {
		case !h.Known():
		case !h.Unit.User:
			system = add(system, h.Unit.Name)
		case h.Unit.UserUID == uid:
			user = add(user, h.Unit.Name)
		}
	}
	return system, user
}

func ask(ctx context.Context, opt Options, mgr *units.Manager, connErr error, names []string, needFile func(units.Unit) bool) (map[string]units.Unit, error) {
	if mgr == nil {
		return nil, connErr
	}
	ctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	return mgr.Units(ctx, names, needFile)
}

// NameOf returns the user name of uid, or the number when it has none.
func NameOf(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return u.Username
	}
	return id
}
