// Package processes reads the process table: for each process its uid, command
// and the systemd unit its cgroup places it in. Any user may read these
// files for any process. Reading a process's open files (to match a socket
// inode) needs more: the same user, or root.
package processes

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/unitname"
)

// Scan reads every process below procRoot. Processes that exit while it
// reads are skipped. It fails only when procRoot cannot be listed.
func Scan(procRoot string) ([]host.Process, error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	out := make([]host.Process, 0, len(entries))
	buf := NewBuffer()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		p, err := read(procRoot, pid, buf)
		if err != nil {
			continue // gone, or a kernel thread without status
		}
		out = append(out, p)
	}
	return out, nil
}

func read(procRoot string, pid int, buf []byte) (host.Process, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	status, err := readSmall(filepath.Join(dir, "status"), buf)
	if err != nil {
		return host.Process{}, err
	}
	p := host.Process{PID: pid}
	var ok bool
	if p.Command, p.UID, ok = parseStatus(status); !ok {
		return host.Process{}, fmt.Errorf("%s/status: no Name or Uid", dir)
	}
	cg, err := readSmall(filepath.Join(dir, "cgroup"), buf)
	if err != nil {
		return host.Process{}, err
	}
	p.Unit = UnitOfCgroup(CgroupPath(cg))
	return p, nil
}

// parseStatus takes Name and the real uid from /proc/PID/status.
func parseStatus(b []byte) (name string, uid uint32, ok bool) {
	var haveName, haveUID bool
	for len(b) > 0 && !(haveName && haveUID) {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		switch {
		case bytes.HasPrefix(line, []byte("Name:")):
			// A process names itself (prctl): printable only.
			name, haveName = host.Printable(string(bytes.TrimSpace(line[5:]))), true
		case bytes.HasPrefix(line, []byte("Uid:")):
			f := bytes.Fields(line[4:])
			if len(f) == 0 {
				return "", 0, false
			}
			u, err := strconv.ParseUint(string(f[0]), 10, 32)
			if err != nil {
				return "", 0, false
			}
			uid, haveUID = uint32(u), true
		}
	}
	return name, uid, haveName && haveUID
}

// CgroupPath picks the systemd cgroup path out of /proc/PID/cgroup: the
// unified ("0::") line, or on legacy and hybrid hierarchies where that line
// is empty or "/", the name=systemd line.
func CgroupPath(b []byte) string {
	var unified, named string
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "0::"):
			unified = line[3:]
		case strings.Contains(line, ":name=systemd:"):
			named = line[strings.Index(line, ":name=systemd:")+len(":name=systemd:"):]
		}
	}
	if (unified == "" || unified == "/") && named != "" {
		return named
	}
	return unified
}

// UnitOfCgroup maps a cgroup path to the unit systemd put it in: the first
// unit below the slices, and below user@UID.service for a user manager's
// units ("/user.slice/user-1000.slice/user@1000.service/app.slice/x.service"
// is user 1000's x.service). Sub-cgroups a service makes for itself
// (podman's libpod-*.scope under the service) belong to that service.
func UnitOfCgroup(path string) host.UnitRef {
	var u host.UnitRef
	for _, c := range strings.Split(path, "/") {
		switch {
		case c == "" || strings.HasSuffix(c, ".slice"):
			continue
		case c == "..":
			return host.UnitRef{} // outside this cgroup namespace: not ours to name
		case !u.User && strings.HasPrefix(c, "user@") && strings.HasSuffix(c, ".service"):
			uid, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(c, "user@"), ".service"), 10, 32)
			if err == nil {
				u.User, u.UserUID = true, uint32(uid)
				continue
			}
		}
		if unitname.Validate(c) != nil {
			return host.UnitRef{}
		}
		u.Name = c
		return u
	}
	return host.UnitRef{}
}

// ErrNoPermission means the process's open files cannot be read by us.
var ErrNoPermission = errors.New("not permitted to read its open files")

// CgroupRoot finds where the systemd cgroup hierarchy is mounted: the
// unified hierarchy (/sys/fs/cgroup), its hybrid mount
// (/sys/fs/cgroup/unified), or the legacy name=systemd one. "" when none.
func CgroupRoot(sysRoot string) string {
	if v2 := CgroupV2Root(sysRoot); v2 != "" {
		return v2
	}
	return cgroupRootIn(sysRoot, "fs/cgroup/systemd")
}

// CgroupV2Root is the cgroup v2 mount alone, whose directory inodes are
// the cgroup ids sock_diag reports. "" when there is none.
func CgroupV2Root(sysRoot string) string {
	return cgroupRootIn(sysRoot, "fs/cgroup", "fs/cgroup/unified")
}

func cgroupRootIn(sysRoot string, dirs ...string) string {
	for _, dir := range dirs {
		p := filepath.Join(sysRoot, dir)
		if _, err := os.Stat(filepath.Join(p, "cgroup.procs")); err == nil {
			return p
		}
	}
	return ""
}

// UnitCgroup is where systemd puts a unit that sets no Slice=: system
// services in system.slice, a user's in app.slice under user@UID.service.
func UnitCgroup(u host.UnitRef) string {
	if u.User {
		return fmt.Sprintf("/user.slice/user-%d.slice/user@%d.service/app.slice/%s", u.UserUID, u.UserUID, u.Name)
	}
	return "/system.slice/" + u.Name
}

// UnitProcesses reads the processes of unit u from its cgroup under
// cgroupRoot (and, when the unit keeps its processes in sub-cgroups, from
// those): the candidates for holding a socket, without reading every
// process on the machine. An empty result means the unit runs nothing
// there (or lives in another slice); the caller then falls back to Scan.
//
// It runs once per conflicting unit, so it reads with plain open/read/
// close and one buffer (readSmall): with 500 conflicts the system calls
// are the cost.
func UnitProcesses(procRoot, cgroupRoot string, u host.UnitRef, buf []byte) []host.Process {
	if cgroupRoot == "" {
		return nil
	}
	return CgroupProcesses(procRoot, filepath.Join(cgroupRoot, UnitCgroup(u)), u, buf)
}

// CgroupProcesses reads the processes of the cgroup directory dir (and
// those below it when it has none itself), all taken to be in unit u.
func CgroupProcesses(procRoot, dir string, u host.UnitRef, buf []byte) []host.Process {
	pids := readPIDs(filepath.Join(dir, "cgroup.procs"), buf)
	if len(pids) == 0 {
		// A unit with sub-cgroups (cgroup v2 keeps processes in leaves).
		_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error { // unreadable parts hold no candidates
			if err == nil && d.IsDir() && path != dir {
				pids = append(pids, readPIDs(filepath.Join(path, "cgroup.procs"), buf)...)
			}
			return nil
		})
	}
	var out []host.Process
	for _, pid := range pids {
		status, err := readSmall(filepath.Join(procRoot, strconv.Itoa(pid), "status"), buf)
		if err != nil {
			continue // exited, or outside our pid namespace
		}
		if name, uid, ok := parseStatus(status); ok {
			out = append(out, host.Process{PID: pid, UID: uid, Command: name, Unit: u})
		}
	}
	return out
}

// NewBuffer returns a buffer for UnitProcesses.
func NewBuffer() []byte { return make([]byte, 16<<10) }

func readPIDs(path string, buf []byte) []int {
	data, err := readSmall(path, buf)
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range bytes.Fields(data) {
		if pid, err := strconv.Atoi(string(f)); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// readSmall reads a small proc or cgroup file into buf (growing only when
// it does not fit), in as few system calls as the kernel allows.
func readSmall(path string, buf []byte) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	n := 0
	for {
		if n == len(buf) {
			buf = append(buf, make([]byte, len(buf))...)
		}
		k, err := syscall.Read(fd, buf[n:])
		if err != nil {
			return nil, err
		}
		if k == 0 {
			return buf[:n], nil
		}
		n += k
		if n < len(buf) {
			// These are seq_files: a read fills the buffer while records
			// are left, so a short one means the end.
			return buf[:n], nil
		}
	}
}

// SocketsOf reads the socket inodes process pid has open. Readable for our
// own processes; for others only as root (ErrNoPermission).
func SocketsOf(procRoot string, pid int) (map[uint64]bool, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid), "fd")
	fds, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return nil, ErrNoPermission
		}
		return nil, err
	}
	out := map[uint64]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(dir, fd.Name()))
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			continue
		}
		if ino, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64); err == nil {
			out[ino] = true
		}
	}
	return out, nil
}
