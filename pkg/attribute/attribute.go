// Package attribute names who holds a socket: among the processes of the
// units expected to hold it (their cgroups), then among every process
// whose files it may read, then by the cgroup the kernel says created the
// socket, so that one without the right to read another user's files
// still names the unit, never a guess of a process. holder decides from
// what it reads here.
package attribute

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/holder"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/places"
	"github.com/portclaim/portclaim/pkg/processes"
	"github.com/portclaim/portclaim/pkg/sockets"
)

// Held is one socket on a port, with its holder.
type Held struct {
	Socket host.Socket
	Holder holder.Holder
}

// Who lists every socket bound to port (proto "" for both), with its
// holder; expected names the units that should hold it.
func Who(port uint16, proto endpoint.Proto, expected []host.UnitRef, at places.Places) ([]Held, error) {
	held, err := New(at).Who([]Query{{Port: port, Proto: proto, Expected: expected}})
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
func (a *Attributor) Who(qs []Query) ([][]Held, error) {
	if len(qs) == 0 {
		return nil, nil // no range would read every port
	}
	ports := make([]uint16, len(qs))
	for i, q := range qs {
		ports[i] = q.Port
	}
	tab, err := sockets.Read(a.at.ProcRoot, sockets.Around(ports, 0)...)
	if err != nil {
		return nil, err
	}
	out := make([][]Held, len(qs))
	for i, q := range qs {
		for _, s := range tab.Sockets {
			if s.Port == q.Port && (q.Proto == "" || s.Proto == q.Proto) {
				out[i] = append(out[i], Held{Socket: s, Holder: a.One(s, q.Expected)})
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

// Attributor finds holders, reading each process's files at most once.
type Attributor struct {
	at         places.Places
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

// New starts an Attributor reading at: one per run, so that each
// process's files are read at most once.
func New(at places.Places) *Attributor {
	return &Attributor{at: at, euid: os.Geteuid(), cgroupRoot: processes.CgroupRoot(at.SysRoot), cgroupV2: processes.CgroupV2Root(at.SysRoot),
		byUnit: map[host.UnitRef][]host.Process{}, fds: map[int]map[uint64]bool{}, buf: processes.NewBuffer()}
}

// One attributes s: first among the processes of the units expected to
// hold it (read from their cgroups), then, when those do not hold it,
// among every process.
func (a *Attributor) One(s host.Socket, expected []host.UnitRef) holder.Holder {
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
func (a *Attributor) everyProcess() []host.Process {
	if !a.scanned {
		a.scanned = true
		a.all, _ = processes.Scan(a.at.ProcRoot)
	}
	return a.all
}

// fromCgroup attributes s to the unit whose cgroup created it (sock_diag's
// cgroup id is the inode of that cgroup v2 directory), with the lowest pid
// of that cgroup running as the socket's owner.
func (a *Attributor) fromCgroup(s host.Socket, expected []host.UnitRef) (holder.Holder, bool) {
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
func (a *Attributor) cgroupDir(id uint64, expected []host.UnitRef) (string, bool) {
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

func (a *Attributor) canRead(uid uint32) bool { return a.euid == 0 || uint32(a.euid) == uid }

func (a *Attributor) hasSocket(p host.Process, inode uint64) (bool, error) {
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
