package processes

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/portclaim/portclaim/pkg/host"
)

func TestUnitOfCgroup(t *testing.T) {
	cases := map[string]host.UnitRef{
		"/system.slice/ollama.service":                {Name: "ollama.service"},
		"/system.slice/qdrant.service/sub":            {Name: "qdrant.service"},
		"/init.scope":                                 {Name: "init.scope"},
		"/user.slice/user-1000.slice/session-3.scope": {Name: "session-3.scope"},
		"/user.slice/user-1000.slice/user@1000.service/app.slice/podman-x.service":         {User: true, UserUID: 1000, Name: "podman-x.service"},
		"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-abc.scope":        {User: true, UserUID: 1000, Name: "libpod-abc.scope"},
		"/user.slice/user-1001.slice/user@1001.service/app.slice/p.service/libpod-1.scope": {User: true, UserUID: 1001, Name: "p.service"},
		"/user.slice/user-1000.slice/user@1000.service/init.scope":                         {User: true, UserUID: 1000, Name: "init.scope"},
		"/":                    {},
		"":                     {},
		"/..":                  {},
		"/../../machine.slice": {},
		"/docker/abcdef":       {},
	}
	for path, want := range cases {
		if got := UnitOfCgroup(path); got != want {
			t.Errorf("UnitOfCgroup(%q) = %+v, want %+v", path, got, want)
		}
	}
}

func TestCgroupPath(t *testing.T) {
	unified := "0::/system.slice/ollama.service\n"
	hybrid := "1:name=systemd:/system.slice/ollama.service\n0::/\n"
	legacy := "4:memory:/x\n1:name=systemd:/system.slice/ollama.service\n"
	for _, in := range []string{unified, hybrid, legacy} {
		if got := CgroupPath([]byte(in)); got != "/system.slice/ollama.service" {
			t.Errorf("CgroupPath(%q) = %q", in, got)
		}
	}
}

func TestParseStatus(t *testing.T) {
	name, uid, ok := parseStatus([]byte("Name:\tollama\nUmask:\t0022\nState:\tS\nUid:\t61234\t61234\t61234\t61234\n"))
	if !ok || name != "ollama" || uid != 61234 {
		t.Fatalf("parseStatus = %q %d %v", name, uid, ok)
	}
	if _, _, ok := parseStatus([]byte("Name:\tx\n")); ok {
		t.Fatal("status without Uid accepted")
	}
}

// TestScanAndHasSocket runs against this machine's /proc: it must find
// this test process, and find a socket it opens among its fds.
func TestScanAndHasSocket(t *testing.T) {
	ps, err := Scan("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var me *host.Process
	for i := range ps {
		if ps[i].PID == os.Getpid() {
			me = &ps[i]
		}
	}
	if me == nil || me.UID != uint32(os.Getuid()) {
		t.Fatalf("Scan did not find this process with our uid: %+v", me)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f, _ := l.(*net.TCPListener).File()
	defer f.Close()
	link, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	var ino uint64
	fmt.Sscanf(link, "socket:[%d]", &ino)
	socks, err := SocketsOf("/proc", os.Getpid())
	if err != nil || !socks[ino] {
		t.Fatalf("SocketsOf(self) = %v, %v; want it to hold %d", socks, err, ino)
	}
}

func TestUnitCgroup(t *testing.T) {
	if got := UnitCgroup(host.UnitRef{Name: "ollama.service"}); got != "/system.slice/ollama.service" {
		t.Error(got)
	}
	if got := UnitCgroup(host.UnitRef{User: true, UserUID: 1000, Name: "podman-x.service"}); got != "/user.slice/user-1000.slice/user@1000.service/app.slice/podman-x.service" {
		t.Error(got)
	}
}

func TestUnitProcessesReadsTheCgroupTree(t *testing.T) {
	cg := t.TempDir()
	dir := filepath.Join(cg, "system.slice", "x.service")
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(cg, "cgroup.procs"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o644)
	os.WriteFile(filepath.Join(dir, "sub", "cgroup.procs"), []byte("999999999\n"), 0o644) // not read: the top has processes
	ps := UnitProcesses("/proc", cg, host.UnitRef{Name: "x.service"}, NewBuffer())
	if len(ps) != 1 || ps[0].PID != os.Getpid() || ps[0].Unit.Name != "x.service" || ps[0].UID != uint32(os.Getuid()) {
		t.Fatalf("UnitProcesses = %+v", ps)
	}
}

func TestCgroupRoot(t *testing.T) {
	sys := t.TempDir()
	if got := CgroupRoot(sys); got != "" {
		t.Errorf("CgroupRoot of an empty tree = %q", got)
	}
	os.MkdirAll(filepath.Join(sys, "fs/cgroup/unified"), 0o755) // hybrid: tmpfs at fs/cgroup
	os.WriteFile(filepath.Join(sys, "fs/cgroup/unified/cgroup.procs"), nil, 0o644)
	if got := CgroupRoot(sys); got != filepath.Join(sys, "fs/cgroup/unified") {
		t.Errorf("hybrid: CgroupRoot = %q", got)
	}
	os.WriteFile(filepath.Join(sys, "fs/cgroup/cgroup.procs"), nil, 0o644) // unified
	if got := CgroupRoot(sys); got != filepath.Join(sys, "fs/cgroup") {
		t.Errorf("unified: CgroupRoot = %q", got)
	}
}

func TestUnitProcessesInSubCgroups(t *testing.T) {
	cg := t.TempDir()
	dir := filepath.Join(cg, "system.slice", "x.service")
	os.MkdirAll(filepath.Join(dir, "payload"), 0o755)
	os.WriteFile(filepath.Join(dir, "cgroup.procs"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "payload", "cgroup.procs"), []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o644)
	if ps := UnitProcesses("/proc", cg, host.UnitRef{Name: "x.service"}, NewBuffer()); len(ps) != 1 || ps[0].PID != os.Getpid() {
		t.Fatalf("UnitProcesses = %+v", ps)
	}
}
