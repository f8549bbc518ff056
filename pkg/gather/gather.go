// Package gather is the reading layer of a check: for one manifest and one
// user it reads the socket tables, the processes behind the sockets in the
// way, the state of the units involved, the policy and the claims, into a
// Snapshot. It decides nothing; it asks the pure packages (conflict,
// holder) only what it needs to read next.
//
// Its cost is one read of the socket tables, the processes of the units
// expected on the ports in the way (their cgroups; every process only when
// those do not hold the socket), one ListUnitsByPatterns on the system
// manager (and one ListUnitFilesByPatterns when a named unit is stopped
// and no claim keeps it down: it may start at boot), and only when a user
// unit is in a conflict, one ListUnitsByPatterns on the user manager.
package gather

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/portclaim/portclaim/pkg/claim"
	"github.com/portclaim/portclaim/pkg/claimstore"
	"github.com/portclaim/portclaim/pkg/conflict"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/holder"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/lastrun"
	"github.com/portclaim/portclaim/pkg/manifest"
	"github.com/portclaim/portclaim/pkg/policy"
	"github.com/portclaim/portclaim/pkg/processes"
	"github.com/portclaim/portclaim/pkg/safeopen"
	"github.com/portclaim/portclaim/pkg/sockets"
	"github.com/portclaim/portclaim/pkg/systemd"
)

// Places are where portclaim reads a machine; tests point them elsewhere.
type Places struct {
	ProcRoot     string // /proc
	SysRoot      string // /sys
	PolicyPath   string // /etc/portclaim/policy.json
	BrokerSocket string // policy.BrokerSocket
	TransientDir string // /run/systemd/transient
	ServedNote   string // policy.ServedNote
	// Booted is there while systemd runs as PID 1 (sd_booted(3)); a user
	// has lingering on when LingerDir/<user> exists.
	Booted    string // /run/systemd/system
	LingerDir string // /var/lib/systemd/linger
	// RootRuns is where root records the runs it makes for users.
	RootRuns string // lastrun.RootDir
}

// Masked reports whether root mode's transient mask of unit is in place:
// TransientDir/unit links to /dev/null. (The link portclaim makes, and
// the only one it removes.)
func (p Places) Masked(unit string) bool {
	t, err := os.Readlink(filepath.Join(p.TransientDir, unit))
	return err == nil && t == "/dev/null"
}

// Default are the places on a running system.
var Default = Places{ProcRoot: "/proc", SysRoot: "/sys", PolicyPath: policy.Path,
	BrokerSocket: policy.BrokerSocket, TransientDir: "/run/systemd/transient",
	Booted: "/run/systemd/system", LingerDir: "/var/lib/systemd/linger", RootRuns: lastrun.RootDir,
	ServedNote: policy.ServedNote}

// Broker says whether portclaim's broker socket listens, is there but
// stopped, or is missing.
func (p Places) Broker() host.Broker {
	if !IsSocket(p.BrokerSocket) {
		return host.BrokerMissing
	}
	if ok, err := sockets.UnixListening(p.ProcRoot, p.BrokerSocket); err == nil && !ok {
		return host.BrokerStopped
	}
	return host.BrokerListening // or not known: resolve will find out
}

// SystemdRuns reports whether systemd runs this machine.
func (p Places) SystemdRuns() bool {
	fi, err := os.Stat(p.Booted)
	return err == nil && fi.IsDir()
}

// Lingers reports whether user has lingering on: their user manager
// starts at boot.
func (p Places) Lingers(user string) bool {
	_, err := os.Stat(filepath.Join(p.LingerDir, user))
	return err == nil
}

// Snapshot is what one look at the machine saw, for one user's manifest.
type Snapshot struct {
	User string
	// Sockets are those on and around the claimed ports (a free port
	// nearby can be suggested); InWay those overlapping a claim.
	Sockets []host.Socket
	InWay   []host.Socket
	Holders map[uint64]holder.Holder // by socket inode
	// System is the state of the system units involved; nil when the
	// system manager could not be asked.
	System map[string]host.Unit
	// UserUnits is the state of the user units in conflicts; nil when
	// the user manager was not asked or could not be.
	UserUnits map[string]host.Unit
	// Policy is the trusted policy, nil when there is none (PolicyProblem
	// says why).
	Policy        *policy.Policy
	PolicyProblem string
	// KeptDown are the system units this user's claims keep from
	// starting; Others those only other users' claims keep down, which
	// come back (they ran before) when those claims go.
	KeptDown, Others map[string]bool
	// Broker says whether portclaim's broker socket listens; "" when no
	// finding needed to know (none is a unit that may yield).
	Broker host.Broker
	// Notes explain a partial view that is still useful; Broken what made
	// it unusable (no socket table, no system bus).
	Notes, Broken []string
	// DBusCalls counts D-Bus method calls per manager.
	DBusCalls map[string]int
	// Findings are the verdicts on the claimed ports (conflict.Classify),
	// made once: they also say which user units to ask about.
	Findings []conflict.Finding
}

// Shared is what the looks and holder lookups of one run share (status
// --format prometheus looks once per user): the policy and the broker's
// socket, read once; the system manager's connection, dialed on first
// need; and what was read of the processes. Make one with Share, and
// Close it.
type Shared struct {
	at            Places
	policy        *policy.Policy
	policyProblem string
	broker        host.Broker // "" until asked
	attr          *attributor
	dialed        bool
	sys           *systemd.Manager
	sysErr        error
}

// Share starts what looks at at share, with the policy already read
// (LoadPolicy).
func Share(at Places, pol *policy.Policy, policyProblem string) *Shared {
	return &Shared{at: at, policy: pol, policyProblem: policyProblem, attr: newAttributor(at)}
}

// Broker says whether portclaim's broker socket listens, read once, on
// first need.
func (sh *Shared) Broker() host.Broker {
	if sh.broker == "" {
		sh.broker = sh.at.Broker()
	}
	return sh.broker
}

// system is the system manager's connection, dialed once; it lives as
// long as the first ctx.
func (sh *Shared) system(ctx context.Context) (*systemd.Manager, error) {
	if !sh.dialed {
		sh.dialed = true
		sh.sys, sh.sysErr = systemd.System(ctx)
	}
	return sh.sys, sh.sysErr
}

// Close closes the system manager's connection, if one was dialed.
func (sh *Shared) Close() {
	if sh.sys != nil {
		sh.sys.Close()
		sh.sys = nil
	}
}

// Look reads the machine for m, for the user uid named user; nameOf
// names the other users the findings mention. Its connections live as
// long as ctx, whose deadline bounds every call.
func Look(ctx context.Context, m manifest.Manifest, uid uint32, user string, nameOf func(uint32) string, at Places) Snapshot {
	pol, problem := LoadPolicy(at.PolicyPath)
	sh := Share(at, pol, problem)
	defer sh.Close()
	return sh.Look(ctx, m, uid, user, nameOf)
}

// Look is Look with what sh shares.
func (sh *Shared) Look(ctx context.Context, m manifest.Manifest, uid uint32, user string, nameOf func(uint32) string) Snapshot {
	at := sh.at
	s := Snapshot{User: user, DBusCalls: map[string]int{}, KeptDown: map[string]bool{}, Others: map[string]bool{}}
	s.Policy, s.PolicyProblem = sh.policy, sh.policyProblem
	if len(m.Services) == 0 {
		return s // nothing claimed: nothing to read, no bus to ask
	}
	if ports := conflict.ClaimedPorts(m); len(ports) > 0 {
		tab, err := sockets.Read(at.ProcRoot, sockets.Around(ports, host.NearbyPorts)...)
		if err != nil {
			s.Broken = append(s.Broken, err.Error())
		}
		s.Sockets = tab.Sockets
	}
	s.InWay = conflict.InWay(s.Sockets, m)
	s.Holders = map[uint64]holder.Holder{}
	for _, sock := range s.InWay {
		s.Holders[sock.Inode] = sh.attr.one(sock, holder.Expected(m, sock, uid))
	}

	var store *claimstore.Store // found on first need: a check rarely needs it
	noteClaims := func(u host.Unit) {
		if store == nil {
			store = &claimstore.Store{Dir: ClaimsDir(s.Policy, at.ServedNote)}
		}
		s.KeptDown[u.Name], s.Others[u.Name] = claimsOn(*store, u.Name, s.User, at)
	}
	sys, err := sh.system(ctx)
	if err != nil {
		s.Broken = append(s.Broken, sh.unreachable(ctx, "the system manager on the system bus", err)+": system unit state is unknown, so no unit can be checked or resolved")
	} else {
		callsBefore := sys.Calls
		names := systemNames(m, s.Holders)
		// A .socket unit's listener belongs to pid 1: where a socket in
		// the way may be one, the sockets that would activate the
		// declared services are asked about in the same call.
		triggers := conflict.MayBeSocketUnit(s.InWay, s.Holders)
		socketOnly := map[string]bool{}
		if triggers {
			for _, sock := range systemd.SocketsFor(conflict.SystemUnits(m)) {
				if !slices.Contains(names, sock) {
					names = append(names, sock)
					socketOnly[sock] = true
				}
			}
		}
		units, err := sys.Units(ctx, names, func(u host.Unit) bool {
			// The unit file state only matters for a stopped unit that
			// may start at boot and that no claim keeps down; of an
			// activating socket, its state is enough.
			if socketOnly[u.Name] {
				return false
			}
			if u.Exists() && !u.Active() {
				noteClaims(u)
			}
			return conflict.MayBeLatent(u, s.KeptDown)
		})
		if err == nil && triggers {
			systemd.LinkTriggers(conflict.SystemUnits(m), units)
		}
		if err != nil {
			s.Broken = append(s.Broken, sh.unreachable(ctx, "the system manager on the system bus", err)+": system unit state is unknown, so no unit can be checked or resolved")
		} else {
			s.System = units
		}
		s.DBusCalls["system"] = sys.Calls - callsBefore
	}
	s.Findings = conflict.Classify(conflict.Input{Manifest: m, UserUID: uid, Sockets: s.InWay, Holders: s.Holders,
		System: s.System, KeptDown: s.KeptDown, Others: s.Others, NameOf: nameOf})
	// Whether the broker listens matters only to a unit that may yield:
	// the kernel's table of Unix sockets is read only then.
	for _, f := range s.Findings {
		if f.Kind == conflict.Resolvable || f.Kind == conflict.Latent {
			s.Broker = sh.Broker()
			break
		}
	}
	s.userSide(ctx, m, uid, at)
	return s
}

// unreachable says why a manager did not answer: the run's time ran out
// (--timeout), systemd does not run this machine, or err.
func (sh *Shared) unreachable(ctx context.Context, what string, err error) string {
	switch {
	case ctx.Err() != nil:
		return fmt.Sprintf("the run's time (--timeout) ran out before %s answered", what)
	case !sh.at.SystemdRuns():
		return fmt.Sprintf("systemd does not run this machine (no %s): %v", sh.at.Booted, err)
	}
	return err.Error()
}

// claimsOn says whether user's claim keeps unit from starting (a
// condition claim: the NixOS module gives every unit the policy lets
// yield its condition; or a root-mode mask still in place; a record
// portclaim cannot read still exists, and keeps it down), and whether it
// comes back by itself: only other users' claims keep it down while it
// ran before them, or the user's own release of it is under way.
func claimsOn(store claimstore.Store, unit, user string, at Places) (mine, others bool) {
	entries, _ := store.OnUnit(unit)
	for _, e := range entries {
		down := false
		switch {
		case e.Releasing:
		case e.Problem != "", e.Claim.Method == claim.ByCondition:
			down = true
		case e.Claim.Method == claim.ByTransientMask:
			down = at.Masked(unit)
		}
		switch {
		case e.User == user && e.Releasing:
			others = others || e.Problem == "" && e.Claim.Prior.WasActive()
		case e.User == user:
			mine = mine || down
		case down && (e.Problem != "" || e.Claim.Prior.WasActive()):
			others = true
		}
	}
	return mine, others && !mine
}

// userSide asks the user manager about the user units in the way (the
// report shows their state; under strategy disable-user also whether a
// unit file or a generator made them), and notes when that manager is
// not running, and why where portclaim can tell.
func (s *Snapshot) userSide(ctx context.Context, m manifest.Manifest, uid uint32, at Places) {
	var names []string
	for _, f := range s.Findings {
		if f.Kind.Conflict() && f.UserUnit != "" && !slices.Contains(names, f.UserUnit) {
			names = append(names, f.UserUnit)
		}
	}
	path := systemd.UserBusPath(int(uid))
	if uid == 0 && !IsSocket(path) {
		return // root's own units are system units; its user manager rarely runs
	}
	unchecked := fmt.Sprintf("%s's user units are not checked, the system side is", s.User)
	if len(names) == 0 {
		if !IsSocket(path) && len(m.Services) > 0 && uid != 0 {
			s.Notes = append(s.Notes, fmt.Sprintf("%s's user manager is not running (%s); the user units are not checked, the system side is%s",
				s.User, path, managerDown(at, s.User, uid)))
		}
		return
	}
	if ctx.Err() != nil {
		s.Notes = append(s.Notes, fmt.Sprintf("the run's time (--timeout) ran out before %s's user manager answered; %s", s.User, unchecked))
		return
	}
	mgr, err := systemd.User(ctx, int(uid))
	if err != nil {
		if ctx.Err() != nil {
			s.Notes = append(s.Notes, fmt.Sprintf("the run's time (--timeout) ran out before %s's user manager answered; %s", s.User, unchecked))
			return
		}
		s.Notes = append(s.Notes, fmt.Sprintf("%v; %s%s", err, unchecked, managerDown(at, s.User, uid)))
		return
	}
	defer mgr.Close()
	var needFile func(host.Unit) bool
	if m.Strategy == manifest.DisableUser {
		needFile = func(u host.Unit) bool { return u.Exists() }
	}
	units, err := mgr.Units(ctx, names, needFile)
	s.DBusCalls["user"] = mgr.Calls
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("the run's time (--timeout) ran out before %s's user manager answered", s.User)
		}
		s.Notes = append(s.Notes, fmt.Sprintf("%v; %s", err, unchecked))
		return
	}
	s.UserUnits = units
}

// managerDown is the next step for a user manager that is not running:
// lingering, for a user who does not linger on a machine systemd runs;
// for one who does, the manager's own unit.
func managerDown(at Places, name string, uid uint32) string {
	switch {
	case uid == 0 || !at.SystemdRuns():
		return ""
	case at.Lingers(name):
		return fmt.Sprintf(" (%s lingers, so it should: `systemctl status user@%d.service` says why not)", name, uid)
	}
	return fmt.Sprintf(" (to have it run from boot: `loginctl enable-linger %s`)", name)
}

// LoadPolicy reads the policy if root alone can have written it; else
// it returns why not.
func LoadPolicy(path string) (*policy.Policy, string) {
	pol, problem, _ := ReadPolicy(path)
	return pol, problem
}

// ReadPolicy is LoadPolicy that also says whether the policy is missing:
// no file at path (the NixOS module is off). A policy that is there but
// cannot be believed (not root's, not whole JSON, a version this binary
// does not read: a newer module beside an older binary) is not a policy
// that allows nothing: the claims made under it stand.
func ReadPolicy(path string) (pol *policy.Policy, problem string, missing bool) {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Sprintf("no portclaim policy is installed (%s does not exist)", path), true
	}
	data, err := safeopen.RootFile(path, policy.MaxSize)
	if err != nil {
		return nil, fmt.Sprintf("the policy cannot be used: %v", err), false
	}
	p, err := policy.Parse(path, data)
	if err != nil {
		return nil, err.Error(), false
	}
	return &p, "", false
}

// ClaimsDir is where the claims are now: the policy's directory, but
// while records wait to be moved there from the directory served last
// (claimstore.Moving), that one; without a trusted policy, the one
// served last. note is the note of that directory (Places.ServedNote).
func ClaimsDir(pol *policy.Policy, note string) string {
	if pol == nil {
		if dir, err := claimstore.Served(note); err == nil {
			return dir
		}
		return policy.DefaultClaimsDir
	}
	if from, err := claimstore.Moving(note, pol.ClaimsDir); err == nil && from != "" {
		return from
	}
	return pol.ClaimsDir
}

// IsSocket reports whether a socket is at path (the broker's, a user
// manager's bus).
func IsSocket(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode()&fs.ModeSocket != 0
}

// systemNames are the system units to ask about: the declared ones and
// the holders found.
func systemNames(m manifest.Manifest, holders map[uint64]holder.Holder) []string {
	names := conflict.SystemUnits(m)
	for _, h := range holders {
		if h.Known() && !h.Unit.User && h.Unit.Name != "" && !slices.Contains(names, h.Unit.Name) {
			names = append(names, h.Unit.Name)
		}
	}
	return names
}

// Held is one socket on a port, with its holder.
type Held struct {
	Socket host.Socket
	Holder holder.Holder
}

// Who lists every socket bound to port (proto "" for both), with its
// holder; expected names the units that should hold it.
func Who(port uint16, proto endpoint.Proto, expected []host.UnitRef, at Places) ([]Held, error) {
	held, err := whoAll([]Query{{Port: port, Proto: proto, Expected: expected}}, newAttributor(at), at)
	if err != nil {
		return nil, err
	}
	return held[0], nil
}

// Query is one port Who asks about.
type Query struct {
	Port     uint16
	Proto    endpoint.Proto // "" for both
	Expected []host.UnitRef
}

// Who answers Who for every query (status: each claimed port), in one
// read of the socket tables.
func (sh *Shared) Who(qs []Query) ([][]Held, error) { return whoAll(qs, sh.attr, sh.at) }

func whoAll(qs []Query, a *attributor, at Places) ([][]Held, error) {
	if len(qs) == 0 {
		return nil, nil // no range would read every port
	}
	ports := make([]uint16, len(qs))
	for i, q := range qs {
		ports[i] = q.Port
	}
	tab, err := sockets.Read(at.ProcRoot, sockets.Around(ports, 0)...)
	if err != nil {
		return nil, err
	}
	out := make([][]Held, len(qs))
	for i, q := range qs {
		for _, s := range tab.Sockets {
			if s.Port == q.Port && (q.Proto == "" || s.Proto == q.Proto) {
				out[i] = append(out[i], Held{Socket: s, Holder: a.one(s, q.Expected)})
			}
		}
	}
	return out, nil
}

// NameOf returns the user name of uid, or the number when it has none.
// Each call asks the user database (without cgo, a read of
// /etc/passwd): a run that names many uids keeps them in Names.
func NameOf(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return u.Username
	}
	return id
}

// Names remembers NameOf's answers for one run; the zero value is ready.
type Names struct{ byUID map[uint32]string }

// Of is NameOf, asked once per uid.
func (n *Names) Of(uid uint32) string {
	if name, ok := n.byUID[uid]; ok {
		return name
	}
	if n.byUID == nil {
		n.byUID = map[uint32]string{}
	}
	name := NameOf(uid)
	n.byUID[uid] = name
	return name
}

// attributor finds holders, reading each process's files at most once.
type attributor struct {
	at         Places
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

func newAttributor(at Places) *attributor {
	return &attributor{at: at, euid: os.Geteuid(), cgroupRoot: processes.CgroupRoot(at.SysRoot), cgroupV2: processes.CgroupV2Root(at.SysRoot),
		byUnit: map[host.UnitRef][]host.Process{}, fds: map[int]map[uint64]bool{}, buf: processes.NewBuffer()}
}

// one attributes s: first among the processes of the units expected to
// hold it (read from their cgroups), then, when those do not hold it,
// among every process.
func (a *attributor) one(s host.Socket, expected []host.UnitRef) holder.Holder {
	var cands []host.Process
	for _, u := range expected {
		ps, ok := a.byUnit[u]
		if !ok {
			ps = processes.UnitProcesses(a.at.ProcRoot, a.cgroupRoot, u, a.buf)
			a.byUnit[u] = ps
		}
		cands = append(cands, ps...)
	}
	h := holder.Attribute(s, cands, expected, a.hasSocket)
	if h.Confidence == holder.Confirmed {
		return h
	}
	var full *holder.Holder // the attribution among every process, once made
	if a.canRead(s.UID) {
		// Every process's files may be open to us: one may confirm it.
		h := holder.Attribute(s, a.everyProcess(), expected, a.hasSocket)
		if h.Confidence == holder.Confirmed {
			return h
		}
		full = &h
	}
	// The holder's files are closed to us (another user's, or root
	// without CAP_SYS_PTRACE, as the broker runs). The kernel says which
	// cgroup created the socket: that names the unit, where the uid alone
	// would only say an expected unit runs as that uid too.
	if ch, ok := a.fromCgroup(s, expected); ok {
		return ch
	}
	if h.Confidence == holder.Probable {
		return h // no cgroup to go by; the full scan would guess the same
	}
	if full != nil {
		return *full
	}
	return holder.Attribute(s, a.everyProcess(), expected, a.hasSocket)
}

// everyProcess reads every process, once.
func (a *attributor) everyProcess() []host.Process {
	if !a.scanned {
		a.scanned = true
		a.all, _ = processes.Scan(a.at.ProcRoot)
	}
	return a.all
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
		Why: fmt.Sprintf("the kernel says the socket (uid %d) was created in the cgroup %s", s.UID, host.Printable(rel))}
	ps, read := a.byUnit[u]
	if !read || dir != filepath.Join(a.cgroupV2, processes.UnitCgroup(u)) {
		ps = processes.CgroupProcesses(a.at.ProcRoot, dir, u, a.buf)
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
		_ = filepath.WalkDir(a.cgroupV2, func(path string, d fs.DirEntry, err error) error { // an unreadable part names no holder
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
		set, _ = processes.SocketsOf(a.at.ProcRoot, p.PID)
		a.fds[p.PID] = set
	}
	return set[inode], nil
}
