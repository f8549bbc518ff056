// Package procs reads the process table: for each process its uid, command
// and the systemd unit its cgroup places it in. Any user may read these
// files for any process. Reading a process's open files (to match a socket
// inode) needs more: the same user, or root.
package procs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/portclaim/portclaim/pkg/unitname"
)

// Process is one entry of /proc.
type Process struct {
	PID     int
	UID     uint32 // real uid
	Command string // comm, as ps -o comm shows it
	Unit    Unit
}

// Unit is where a cgroup path places a process: a unit of the system
// manager, or of the user manager of UserUID. An empty Name means the
// process is outside any unit portclaim can name (a cgroup outside this
// machine's tree, or the root).
type Unit struct {
	User    bool
	UserUID uint32
	Name    string
}

// Scan reads every process below procRoot. Processes that exit while it
// reads are skipped. It fails only when procRoot cannot be listed.
func Scan(procRoot string) ([]Process, error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	out := make([]Process, 0, len(entries))
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		p, err := read(procRoot, pid)
		if err != nil {
			continue // gone, or a kernel thread without status
		}
		out = append(out, p)
	}
	return out, nil
}

func read(procRoot string, pid int) (Process, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return Process{}, err
	}
	p := Process{PID: pid}
	var ok bool
	if p.Command, p.UID, ok = parseStatus(status); !ok {
		return Process{}, fmt.Errorf("%s/status: no Name or Uid", dir)
	}
	cg, err := os.ReadFile(filepath.Join(dir, "cgroup"))
	if err != nil {
		return Process{}, err
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
			name, haveName = string(bytes.TrimSpace(line[5:])), true
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
func UnitOfCgroup(path string) Unit {
	var u Unit
	for _, c := range strings.Split(path, "/") {
		switch {
		case c == "" || strings.HasSuffix(c, ".slice"):
			continue
		case c == "..":
			return Unit{} // outside this cgroup namespace: not ours to name
		case !u.User && strings.HasPrefix(c, "user@") && strings.HasSuffix(c, ".service"):
			uid, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(c, "user@"), ".service"), 10, 32)
			if err == nil {
				u.User, u.UserUID = true, uint32(uid)
				continue
			}
		}
		if unitname.Validate(c) != nil {
			return Unit{}
		}
		u.Name = c
		return u
	}
	return Unit{}
}

// ErrNoPermission means the process's open files cannot be read by us.
var ErrNoPermission = errors.New("not permitted to read its open files")

// HasSocket reports whether process pid has the socket with this inode
// open. Readable for our own processes; for others only as root.
func HasSocket(procRoot string, pid int, inode uint64) (bool, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid), "fd")
	fds, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return false, ErrNoPermission
		}
		return false, err
	}
	want := "socket:[" + strconv.FormatUint(inode, 10) + "]"
	for _, fd := range fds {
		if link, err := os.Readlink(filepath.Join(dir, fd.Name())); err == nil && link == want {
			return true, nil
		}
	}
	return false, nil
}
