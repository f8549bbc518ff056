package sockets

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/host"
)

func littleEndianOnly(t testing.TB) {
	// The fixtures were captured on x86_64; the kernel prints addresses in
	// host byte order, so they only decode right on a little-endian host.
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], 1)
	if b[0] != 1 {
		t.Skip("fixtures are little-endian")
	}
}

func TestReadFixtures(t *testing.T) {
	littleEndianOnly(t)
	proc := t.TempDir()
	os.MkdirAll(filepath.Join(proc, "net"), 0o755)
	for _, f := range []string{"tcp", "tcp6", "udp"} { // no udp6: IPv6 tables may be missing
		data, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(proc, "net", f), data, 0o644)
	}
	tab, err := Read(proc)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range tab.Sockets {
		got = append(got, fmt.Sprintf("%s %s uid=%d inode=%d v6only=%v", s.Proto, s.Endpoint, s.UID, s.Inode, s.V6Only))
	}
	want := []string{
		"tcp 127.0.0.1:11434 uid=0 inode=1001 v6only=false",
		"tcp 0.0.0.0:6333 uid=1000 inode=1002 v6only=false",
		"tcp [::]:8080 uid=65534 inode=1003 v6only=false",
		"tcp [::1]:3001 uid=1000 inode=1004 v6only=false",
		"tcp [::ffff:127.0.0.1]:11435 uid=0 inode=1006 v6only=false",
		"udp 0.0.0.0:5353 uid=104 inode=1005 v6only=false",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(tab.Missing) != 1 || !strings.HasSuffix(tab.Missing[0], "udp6") {
		t.Errorf("Missing = %v, want the udp6 table", tab.Missing)
	}

	os.MkdirAll(filepath.Join(proc, "sys/net/ipv6"), 0o755)
	os.WriteFile(filepath.Join(proc, "sys/net/ipv6/bindv6only"), []byte("1\n"), 0o644)
	tab, _ = Read(proc)
	for _, s := range tab.Sockets {
		wantV6Only := s.Inode == 1003 || s.Inode == 1004 // not the v4-mapped one, not IPv4
		if s.V6Only != wantV6Only {
			t.Errorf("with bindv6only=1, %v V6Only = %v, want %v", s.Endpoint, s.V6Only, wantV6Only)
		}
	}
}

func TestReadFailsWithoutProcNet(t *testing.T) {
	if _, err := Read(t.TempDir()); err == nil {
		t.Fatal("Read of an empty dir succeeded; want an error")
	}
}

func TestParseRejectsGarbage(t *testing.T) {
	for _, line := range []string{
		"0: 0100007F:2CAA 00000000:0000 0A",                                                 // too few fields
		"0: 0100007G:2CAA 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1",  // bad hex
		"0: 0100007F:2CAA0 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1", // port too long
		"0: 0100007F:2CAA 00000000:0000 0A 00000000:00000000 00:00000000 00000000 x 0 1 1",  // bad uid
		"0: 00000000000000000000000001000000:0BB9 0:0 0A 0:0 0:0 0 0 0 1 1",                 // v6 address in the v4 table
	} {
		if _, err := Parse([]byte("header\n"+line+"\n"), endpoint.TCP, false, false); err == nil {
			t.Errorf("Parse(%q) succeeded; want an error", line)
		}
	}
}

// TestReadSeesRealSockets binds real sockets and finds them, with the
// right owner and inode, in this machine's tables.
func TestReadSeesRealSockets(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	tab, err := Read("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		proto endpoint.Proto
		addr  net.Addr
		inode uint64
	}{
		{endpoint.TCP, tcp.Addr(), inodeOf(t, tcp.(*net.TCPListener))},
		{endpoint.UDP, udp.LocalAddr(), inodeOf(t, udp.(*net.UDPConn))},
	} {
		found := false
		for _, s := range tab.Sockets {
			if s.Proto == want.proto && s.Endpoint.String() == want.addr.String() {
				found = true
				if s.UID != uint32(os.Getuid()) || s.Inode != want.inode {
					t.Errorf("%s %s: uid %d inode %d, want uid %d inode %d", want.proto, want.addr, s.UID, s.Inode, os.Getuid(), want.inode)
				}
			}
		}
		if !found {
			t.Errorf("%s %s not in the socket table", want.proto, want.addr)
		}
	}
}

type fileConn interface{ File() (*os.File, error) }

func inodeOf(t *testing.T, c fileConn) uint64 {
	f, err := c.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	link, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	var ino uint64
	if _, err := fmt.Sscanf(link, "socket:[%d]", &ino); err != nil {
		t.Fatalf("fd link %q: %v", link, err)
	}
	return ino
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"tcp", "tcp6", "udp"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, strings.HasSuffix(name, "6"))
	}
	f.Add([]byte("h\n 0: :\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, v6 bool) {
		socks, err := Parse(data, endpoint.TCP, v6, false)
		if err != nil {
			return
		}
		for _, s := range socks {
			if s.Port == 0 || !s.Addr.IsValid() || s.Addr.Is6() != v6 {
				t.Fatalf("accepted %+v from a v6=%v table", s, v6)
			}
		}
	})
}

// TestDiagAgreesWithProcNet: the netlink dump and the /proc/net text
// describe the same sockets the same way.
func TestDiagAgreesWithProcNet(t *testing.T) {
	l6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	defer l6.Close()
	u, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	defer u.Close()
	live, err := ReadLive("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var text Table
	for _, tb := range tables {
		one, err := readTable("/proc", tb, readBindV6Only("/proc"), nil)
		if err != nil {
			t.Fatal(err)
		}
		text.Sockets = append(text.Sockets, one.Sockets...)
	}
	key := func(s host.Socket) string { return fmt.Sprintf("%s %s uid=%d", s.Proto, s.Endpoint, s.UID) }
	fromText := map[uint64]string{}
	for _, s := range text.Sockets {
		fromText[s.Inode] = key(s)
	}
	found := 0
	for _, s := range live.Sockets {
		if k, ok := fromText[s.Inode]; ok {
			found++
			if k != key(s) {
				t.Errorf("inode %d: sock_diag says %s, /proc/net says %s", s.Inode, key(s), k)
			}
		}
	}
	for _, want := range []string{"tcp " + l6.Addr().String(), "udp " + u.LocalAddr().String()} {
		ok := false
		for _, s := range live.Sockets {
			ok = ok || fmt.Sprintf("%s %s", s.Proto, s.Endpoint) == want
		}
		if !ok {
			t.Errorf("sock_diag did not report %s", want)
		}
	}
	if found < 2 {
		t.Errorf("only %d sockets in common between sock_diag and /proc/net", found)
	}
}

func FuzzParseDiag(f *testing.F) {
	msg := make([]byte, 16+72+8)
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], sockDiagByFamily)
	msg[16] = 10 // AF_INET6
	msg[16+5] = 0x1f
	binary.NativeEndian.PutUint16(msg[16+72:], 5)
	binary.NativeEndian.PutUint16(msg[16+72+2:], attrSkV6Only)
	msg[16+72+4] = 1
	f.Add(msg)
	f.Add([]byte{16, 0, 0, 0, 3, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		socks, _, err := ParseDiag(b, endpoint.TCP)
		if err != nil {
			return
		}
		for _, s := range socks {
			if s.Port == 0 || !s.Addr.IsValid() {
				t.Fatalf("accepted %+v", s)
			}
		}
	})
}

// TestPortFilterInTheKernel: a dump filtered to some ports returns the
// sockets on them and none other, through the kernel's bytecode filter.
func TestPortFilterInTheKernel(t *testing.T) {
	var ports []uint16
	for i := 0; i < 4; i++ {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close() // held open until the test ends
		ports = append(ports, uint16(l.Addr().(*net.TCPAddr).Port))
	}
	want := []uint16{ports[0], ports[2]}
	tab, err := ReadLive("/proc", Around(want, 0)...)
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint16]bool{}
	for _, s := range tab.Sockets {
		got[s.Port] = true
		if !in(s.Port, Around(want, 0)) {
			t.Errorf("the filtered dump returned port %d", s.Port)
		}
	}
	if !got[ports[0]] || !got[ports[2]] || got[ports[1]] || got[ports[3]] {
		t.Errorf("asked for %v of %v, got %v", want, ports, got)
	}
	// The kernel rejects a malformed program (EINVAL) rather than
	// filtering wrongly; a good one is accepted by its audit.
	if _, err := dump(endpoint.TCP, false, Around([]uint16{1, 100, 1000, 40000, 65535}, 3)); err != nil {
		t.Fatalf("the kernel refused the filter: %v", err)
	}
}

func TestAround(t *testing.T) {
	got := Around([]uint16{6334, 6333, 11434, 2, 65534}, 5)
	want := []Range{{1, 7}, {6328, 6339}, {11429, 11439}, {65529, 65535}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Around = %v, want %v", got, want)
	}
}

// TestCgroupIDIsTheCreatorsCgroup: sock_diag tells which cgroup created a
// socket, as the inode of its cgroup v2 directory, which any user may read.
func TestCgroupIDIsTheCreatorsCgroup(t *testing.T) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Skip(err)
	}
	var path string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "0::") {
			path = line[3:]
		}
	}
	var dir string
	for _, root := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		if _, err := os.Stat(root + "/cgroup.procs"); err == nil {
			dir = filepath.Join(root, path)
			break
		}
	}
	fi, err := os.Stat(dir)
	if path == "" || dir == "" || err != nil {
		t.Skip("no cgroup v2 hierarchy here")
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	tab, err := ReadLive("/proc", Range{port, port})
	if err != nil || len(tab.Sockets) != 1 {
		t.Fatalf("ReadLive: %v, %d sockets", err, len(tab.Sockets))
	}
	if got, want := tab.Sockets[0].CgroupID, fi.Sys().(*syscall.Stat_t).Ino; got != want {
		t.Errorf("CgroupID = %d, want the inode %d of %s", got, want, dir)
	}
}
