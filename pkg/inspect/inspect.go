// Package inspect gathers what portclaim looks at — the socket tables, the
// processes behind the sockets in the way, the state of the units involved —
// and hands it to package conflict. It is the I/O edge: it decides nothing.
package inspect

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/portclaim/portclaim/pkg/conflict"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/holder"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/manifest"
	"github.com/portclaim/portclaim/pkg/processes"
	"github.com/portclaim/portclaim/pkg/sockets"
	"github.com/portclaim/portclaim/pkg/systemd"
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
	UserUnits map[string]host.Unit
	// Notes explain a partial view that is still useful (no user manager).
	Notes []string
	// Broken lists what made the view unusable: no socket table, no
	// system bus. portclaim exits 3 when it is not empty.
	Broken []string
	// System is the state of the system units involved; nil when the
	// system manager could not be asked.
	System map[string]host.Unit
	// Sockets are those on and around the claimed ports, from this run's
	// one read of the tables.
	Sockets []host.Socket
	// DBusCalls counts D-Bus method calls, per manager.
	DBusCalls map[string]int
}

// Session holds the connections to both managers for one run, so that
// check, resolve and release share them. The user manager is dialed only
// when something needs it.
type Session struct {
	Opt    Options
	System *systemd.Manager // nil when not reachable
	SysErr error
	ctx    context.Context
	user   *systemd.Manager
	usrErr error
	dialed bool
}

// Open connects to the system manager.
func Open(ctx context.Context, opt Options) *Session {
	// The connections live as long as ctx (godbus closes a connection
	// when its dial context ends); each call is bounded by opt.Timeout.
	s := &Session{Opt: opt, ctx: ctx}
	s.System, s.SysErr = systemd.System(ctx)
	return s
}

// User returns the connection to the user manager of Opt.UID, dialing it
// the first time.
func (s *Session) User() (*systemd.Manager, error) {
	if !s.dialed {
		s.dialed = true
		s.user, s.usrErr = systemd.User(s.ctx, s.Opt.UID)
	}
	return s.user, s.usrErr
}

// Close ends both connections.
func (s *Session) Close() {
	if s.System != nil {
		s.System.Close()
	}
	if s.user != nil {
		s.user.Close()
	}
}

// Check looks at this machine for the manifest's claims. keptDown lists
// the system units that this user's claims keep from starting.
//
// Its cost is one read of the socket tables, the processes of the units
// expected on the ports in the way (their cgroups; every process only when
// those do not hold the socket), one ListUnitsByPatterns on the system
// manager, and only when there is a conflict, one on the user manager.
func (s *Session) Check(ctx context.Context, m manifest.Manifest, keptDown map[string]bool) Result {
	opt := s.Opt
	res := Result{UserName: NameOf(uint32(opt.UID)), DBusCalls: map[string]int{}}
	// The claimed ports and their neighbours (for a free port to suggest).
	var tab sockets.Table
	var err error
	if ports := claimedPorts(m); len(ports) > 0 {
		tab, err = sockets.Read(opt.ProcRoot, sockets.Around(ports, suggestMargin)...)
		if err != nil {
			res.Broken = append(res.Broken, err.Error())
		}
	}
	res.Sockets = tab.Sockets
	inWay := conflict.InWay(tab.Sockets, m)
	holders := newAttributor(opt).attribute(inWay, m)

	sysNames := systemNames(m, holders)
	// The unit file state only matters for a stopped unit that may start
	// at boot (latent) and that no claim keeps down.
	latentCandidate := func(u host.Unit) bool { return u.Exists() && !u.Active() && !keptDown[u.Name] }
	system, err := ask(ctx, opt, s.System, s.SysErr, func(mgr *systemd.Manager, ctx context.Context) (map[string]host.Unit, error) {
		us, err := mgr.Units(ctx, sysNames, latentCandidate)
		if err == nil && heldByManager(holders, inWay) {
			// A .socket unit's listener belongs to pid 1: find the
			// sockets that activate the declared services.
			err = mgr.AddTriggers(ctx, declaredSystemUnits(m), us)
		}
		return us, err
	})
	if err != nil {
		res.Broken = append(res.Broken, fmt.Sprintf("%v: system unit state is unknown, so no unit can be checked or resolved", err))
	}
	res.System = system
	res.Findings = conflict.Classify(conflict.Input{
		Manifest: m, UserUID: uint32(opt.UID), UserName: res.UserName,
		Sockets: inWay, Holders: holders, System: system, Claimed: keptDown,
		NameOf: NameOf,
	})
	s.userSide(ctx, &res)
	if s.System != nil {
		res.DBusCalls["system"] = s.System.Calls
	}
	if s.user != nil {
		res.DBusCalls["user"] = s.user.Calls
	}
	return res
}

// userSide asks the user manager about the user units in conflicts (the
// report shows their state), and notes when that manager is not running.
func (s *Session) userSide(ctx context.Context, res *Result) {
	var names []string
	for _, f := range res.Findings {
		if f.Kind.Conflict() && f.UserUnit != "" && !slices.Contains(names, f.UserUnit) {
			names = append(names, f.UserUnit)
		}
	}
	if len(names) == 0 {
		if path, _ := systemd.UserBus(s.Opt.UID, os.Geteuid(), os.Getenv("XDG_RUNTIME_DIR")); !exists(path) {
			_, err := s.User() // says why, the same way as when it is needed
			res.Notes = append(res.Notes, fmt.Sprintf("%v; %s's user units are not checked, the system side is", err, res.UserName))
		}
		return
	}
	mgr, err := s.User()
	res.UserUnits, err = ask(ctx, s.Opt, mgr, err, func(mgr *systemd.Manager, ctx context.Context) (map[string]host.Unit, error) {
		return mgr.Units(ctx, names, nil)
	})
	if err != nil {
		res.Notes = append(res.Notes, fmt.Sprintf("%v; %s's user units are not checked, the system side is", err, res.UserName))
	}
}

// suggestMargin is how far from a claimed port plan.SuggestPort looks for
// a free one; keep in sync.
const suggestMargin = 100

func claimedPorts(m manifest.Manifest) []uint16 {
	var out []uint16
	for _, svc := range m.Services {
		for _, p := range svc.Ports {
			out = append(out, p.Port)
		}
	}
	return out
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Held is one socket on a port, with its holder.
type Held struct {
	Socket host.Socket
	Holder holder.Holder
}

// Who lists every socket bound to port (proto "" for both). expected
// names the units that should hold it (the manifest's, a claim's): their
// processes are looked at first, and unprivileged they make a root-owned
// socket's holder probable rather than unknown.
func Who(opt Options, port uint16, proto endpoint.Proto, expected []host.UnitRef) ([]Held, error) {
	tab, err := sockets.Read(opt.ProcRoot, sockets.Range{Lo: port, Hi: port})
	if err != nil {
		return nil, err
	}
	var on []host.Socket
	for _, s := range tab.Sockets {
		if s.Port == port && (proto == "" || s.Proto == proto) {
			on = append(on, s)
		}
	}
	if len(on) == 0 {
		return nil, nil
	}
	a := newAttributor(opt)
	var out []Held
	for _, s := range on {
		out = append(out, Held{Socket: s, Holder: a.one(s, expected)})
	}
	return out, nil
}

// attributor finds holders, reading each process's files at most once.
type attributor struct {
	opt        Options
	euid       int
	cgroupRoot string
	byUnit     map[host.UnitRef][]host.Process
	all        []host.Process // every process; read on first need
	scanned    bool
	fds        map[int]map[uint64]bool // socket inodes by pid; nil: unreadable
	buf        []byte
	cgroupV2   string            // where cgroup ids are directory inodes; "" without v2
	cgroupIDs  map[uint64]string // cgroup directory by inode, walked on first need
}

func newAttributor(opt Options) *attributor {
	return &attributor{opt: opt, euid: os.Geteuid(), cgroupRoot: processes.CgroupRoot("/sys"), cgroupV2: processes.CgroupV2Root("/sys"),
		byUnit: map[host.UnitRef][]host.Process{}, fds: map[int]map[uint64]bool{}, buf: processes.NewBuffer()}
}

func (a *attributor) attribute(inWay []host.Socket, m manifest.Manifest) map[uint64]holder.Holder {
	out := map[uint64]holder.Holder{}
	for _, s := range inWay {
		out[s.Inode] = a.one(s, expected(s, m, uint32(a.opt.UID)))
	}
	return out
}

// one attributes s: first among the processes of the units expected to
// hold it (read from their cgroups), then, when those do not hold it,
// among every process.
func (a *attributor) one(s host.Socket, expected []host.UnitRef) holder.Holder {
	var cands []host.Process
	for _, u := range expected {
		ps, ok := a.byUnit[u]
		if !ok {
			ps = processes.UnitProcesses(a.opt.ProcRoot, a.cgroupRoot, u, a.buf)
			a.byUnit[u] = ps
		}
		cands = append(cands, ps...)
	}
	h := holder.Attribute(s, cands, expected, a.hasSocket)
	if h.Confidence == holder.Confirmed {
		return h
	}
	if !a.canRead(s.UID) {
		// The holder's files are closed to us. The kernel says which
		// cgroup created the socket: that names the unit, where the uid
		// alone would only say an expected unit runs as that uid too.
		if ch, ok := a.fromCgroup(s, expected); ok {
			return ch
		}
		if h.Confidence == holder.Probable && s.CgroupID == 0 {
			return h // no cgroup to go by; the full scan would guess the same
		}
	}
	if !a.scanned {
		a.scanned = true
		a.all, _ = processes.Scan(a.opt.ProcRoot)
	}
	return holder.Attribute(s, a.all, expected, a.hasSocket)
}

// fromCgroup attributes s to the unit whose cgroup created it (sock_diag's
// cgroup id is the inode of that cgroup v2 directory), with the lowest pid
// of that cgroup running as the socket's owner.
func (a *attributor) fromCgroup(s host.Socket, expected []host.UnitRef) (holder.Holder, bool) {
	if s.CgroupID == 0 || a.cgroupV2 == "" {
		return holder.Holder{}, false
	}
	dir, ok := a.cgroupDir(s.CgroupID, expected)
	if !ok {
		return holder.Holder{}, false // created outside our cgroup tree
	}
	rel := strings.TrimPrefix(dir, a.cgroupV2)
	u := processes.UnitOfCgroup(rel)
	h := holder.Holder{Unit: u, UID: s.UID, Confidence: holder.Probable,
		Why: fmt.Sprintf("the kernel says the socket (uid %d) was created in the cgroup %s", s.UID, rel)}
	ps, read := a.byUnit[u]
	if !read || dir != filepath.Join(a.cgroupV2, processes.UnitCgroup(u)) {
		ps = processes.CgroupProcesses(a.opt.ProcRoot, dir, u, a.buf)
	}
	for _, p := range ps {
		if p.UID == s.UID && (h.PID == 0 || p.PID < h.PID) {
			h.PID, h.Command = p.PID, p.Command
		}
	}
	return h, true
}

// cgroupDir finds the cgroup directory whose inode is id: first among the
// expected units' own (one stat each), else by one walk of the tree.
func (a *attributor) cgroupDir(id uint64, expected []host.UnitRef) (string, bool) {
	for _, u := range expected {
		dir := filepath.Join(a.cgroupV2, processes.UnitCgroup(u))
		if inode(dir) == id {
			return dir, true
		}
	}
	if a.cgroupIDs == nil {
		a.cgroupIDs = map[uint64]string{}
		filepath.WalkDir(a.cgroupV2, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				a.cgroupIDs[inode(path)] = path
			}
			return nil
		})
	}
	dir, ok := a.cgroupIDs[id]
	return dir, ok
}

func inode(path string) uint64 {
	var st syscall.Stat_t
	if syscall.Stat(path, &st) != nil {
		return 0
	}
	return st.Ino
}

func (a *attributor) canRead(uid uint32) bool { return a.euid == 0 || uint32(a.euid) == uid }

func (a *attributor) hasSocket(p host.Process, inode uint64) (bool, error) {
	if !a.canRead(p.UID) {
		return false, processes.ErrNoPermission // not worth a system call
	}
	set, seen := a.fds[p.PID]
	if !seen {
		set, _ = processes.SocketsOf(a.opt.ProcRoot, p.PID)
		a.fds[p.PID] = set
	}
	return set[inode], nil
}

// Expected lists the units the manifest says may hold a socket on port.
func Expected(m manifest.Manifest, port uint16, proto endpoint.Proto, uid uint32) []host.UnitRef {
	var out []host.UnitRef
	for _, p := range []endpoint.Proto{endpoint.TCP, endpoint.UDP} {
		if proto == "" || proto == p {
			out = append(out, expected(host.Socket{Endpoint: endpoint.Endpoint{Proto: p, Port: port}}, m, uid)...)
		}
	}
	return out
}

// expected lists the units the manifest says may hold s: the claiming
// service's system units, then its user units.
func expected(s host.Socket, m manifest.Manifest, uid uint32) []host.UnitRef {
	var out []host.UnitRef
	for _, svc := range m.Services {
		for _, p := range svc.Ports {
			if !endpoint.Overlap(p, s.Endpoint) {
				continue
			}
			for _, u := range svc.SystemUnits {
				out = append(out, host.UnitRef{Name: u})
			}
			for _, u := range svc.UserUnits {
				out = append(out, host.UnitRef{User: true, UserUID: uid, Name: u})
			}
		}
	}
	return out
}

// systemNames are the system units to ask about: the declared ones and
// the holders found.
func systemNames(m manifest.Manifest, holders map[uint64]holder.Holder) []string {
	names := declaredSystemUnits(m)
	for _, h := range holders {
		if h.Known() && !h.Unit.User && h.Unit.Name != "" && !slices.Contains(names, h.Unit.Name) {
			names = append(names, h.Unit.Name)
		}
	}
	return names
}

func declaredSystemUnits(m manifest.Manifest) []string {
	var names []string
	for _, svc := range m.Services {
		for _, u := range svc.SystemUnits {
			if !slices.Contains(names, u) {
				names = append(names, u)
			}
		}
	}
	return names
}

// heldByManager reports whether a socket in the way may be a .socket
// unit's: held by the system manager itself, or root's and unattributed.
func heldByManager(holders map[uint64]holder.Holder, inWay []host.Socket) bool {
	for _, s := range inWay {
		h := holders[s.Inode]
		if h.Known() && !h.Unit.User && h.Unit.Name == "init.scope" || !h.Known() && s.UID == 0 {
			return true
		}
	}
	return false
}

func ask(ctx context.Context, opt Options, mgr *systemd.Manager, connErr error, query func(*systemd.Manager, context.Context) (map[string]host.Unit, error)) (map[string]host.Unit, error) {
	if mgr == nil {
		return nil, connErr
	}
	ctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	return query(mgr, ctx)
}

// NameOf returns the user name of uid, or the number when it has none.
func NameOf(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return u.Username
	}
	return id
}
