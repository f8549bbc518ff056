// Package sockets reads the kernel's socket tables (/proc/net/tcp, tcp6,
// udp, udp6): every listening TCP socket and every bound UDP socket, with
// its address, port, owner uid and inode. Any user can read these tables,
// which is why portclaim can see who holds a port without privileges.
package sockets

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/host"
)

// Table is the result of one read of the four tables.
type Table struct {
	Sockets []host.Socket
	// Missing lists tables that do not exist (tcp6/udp6 without IPv6).
	Missing []string
}

// tcpListen is TCP_LISTEN in the kernel's tcp_states.h; the tables print
// the state in hex.
const tcpListen = 0x0A

// table describes one /proc/net file.
type table struct {
	file  string
	proto endpoint.Proto
	v6    bool
}

var tables = []table{
	{"tcp", endpoint.TCP, false}, {"tcp6", endpoint.TCP, true},
	{"udp", endpoint.UDP, false}, {"udp6", endpoint.UDP, true},
}

// Read reads every listening TCP and bound UDP socket on the given port
// ranges (every port when none) once: through
// sock_diag when procRoot is this process's own /proc (see diag.go), else
// (a copy of /proc, in tests) from procRoot/net/{tcp,tcp6,udp,udp6}.
//
// From the text tables, IPV6_V6ONLY is not visible per socket: "::"
// sockets are taken to be v6-only when net.ipv6.bindv6only is 1, which is
// what a socket gets unless its program says otherwise.
//
// It fails only when no IPv4 table can be read: that is not a usable
// Linux /proc.
func Read(procRoot string, ranges ...Range) (Table, error) {
	if live(procRoot) {
		return ReadLive(procRoot, ranges...)
	}
	var t Table
	v6only := readBindV6Only(procRoot)
	for _, tb := range tables {
		one, err := readTable(procRoot, tb, v6only, ranges)
		if err != nil {
			return t, err
		}
		t.Sockets = append(t.Sockets, one.Sockets...)
		t.Missing = append(t.Missing, one.Missing...)
	}
	return t, nil
}

// readTable reads one /proc/net table; a missing IPv6 table (no IPv6) is
// noted, not an error.
func readTable(procRoot string, tb table, v6only bool, ranges []Range) (Table, error) {
	var t Table
	path := filepath.Join(procRoot, "net", tb.file)
	data, err := os.ReadFile(path)
	if err != nil {
		if tb.v6 && errors.Is(err, fs.ErrNotExist) {
			t.Missing = append(t.Missing, path)
			return t, nil
		}
		return t, fmt.Errorf("reading the socket table: %w", err)
	}
	socks, err := Parse(data, tb.proto, tb.v6, v6only)
	if err != nil {
		return t, fmt.Errorf("%s: %w", path, err)
	}
	for _, s := range socks {
		if in(s.Port, ranges) {
			t.Sockets = append(t.Sockets, s)
		}
	}
	return t, nil
}

func readBindV6Only(procRoot string) bool {
	data, err := os.ReadFile(filepath.Join(procRoot, "sys/net/ipv6/bindv6only"))
	return err == nil && strings.TrimSpace(string(data)) == "1"
}

// Parse parses the text of one table. It keeps listening TCP sockets and
// UDP sockets bound to a port; connections are not port holders.
// It fails on a line it cannot read rather than guess.
func Parse(data []byte, proto endpoint.Proto, v6, bindV6Only bool) ([]host.Socket, error) {
	// One allocation at the most sockets there can be, rather than
	// growing through copies.
	out := make([]host.Socket, 0, bytes.Count(data, []byte{'\n'}))
	first := true
	for len(data) > 0 {
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		if first { // the header: "  sl  local_address rem_address ..."
			first = false
			continue
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		s, keep, err := parseLine(line, proto, v6)
		if err != nil {
			return nil, fmt.Errorf("line %q: %w", line, err)
		}
		if keep {
			s.V6Only = v6 && bindV6Only && s.Addr.Is6() && !s.Addr.Is4In6()
			out = append(out, s)
		}
	}
	return out, nil
}

// Field positions in a table line, after splitting on spaces:
// sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
const (
	fLocal = 1
	fState = 3
	fUID   = 7
	fInode = 9
	fCount = 10
)

func parseLine(line []byte, proto endpoint.Proto, v6 bool) (host.Socket, bool, error) {
	var fields [fCount][]byte
	n := 0
	for n < fCount {
		line = bytes.TrimLeft(line, " ")
		if len(line) == 0 {
			break
		}
		end := bytes.IndexByte(line, ' ')
		if end < 0 {
			end = len(line)
		}
		fields[n], line = line[:end], line[end:]
		n++
	}
	if n < fCount {
		return host.Socket{}, false, fmt.Errorf("has %d fields, want at least %d", n, fCount)
	}
	state, ok := parseHex(fields[fState])
	if !ok {
		return host.Socket{}, false, fmt.Errorf("bad state %q", fields[fState])
	}
	addr, port, err := parseAddrPort(fields[fLocal], v6)
	if err != nil {
		return host.Socket{}, false, err
	}
	if proto == endpoint.TCP && state != tcpListen || port == 0 {
		return host.Socket{}, false, nil
	}
	uid, ok := parseDec(fields[fUID])
	if !ok {
		return host.Socket{}, false, fmt.Errorf("bad uid %q", fields[fUID])
	}
	inode, ok := parseDec(fields[fInode])
	if !ok {
		return host.Socket{}, false, fmt.Errorf("bad inode %q", fields[fInode])
	}
	return host.Socket{
		Endpoint: endpoint.Endpoint{Proto: proto, Addr: addr, Port: uint16(port)},
		UID:      uint32(uid),
		Inode:    inode,
	}, true, nil
}

// parseAddrPort decodes "0100007F:1F90". The kernel prints each 32-bit
// word of the address in host byte order, so decode with the native order.
func parseAddrPort(b []byte, v6 bool) (netip.Addr, uint64, error) {
	colon := bytes.IndexByte(b, ':')
	if colon < 0 {
		return netip.Addr{}, 0, fmt.Errorf("bad local address %q", b)
	}
	hexAddr, hexPort := b[:colon], b[colon+1:]
	port, ok := parseHex(hexPort)
	if !ok || port > 0xFFFF || len(hexPort) != 4 {
		return netip.Addr{}, 0, fmt.Errorf("bad port %q", hexPort)
	}
	words := 1
	if v6 {
		words = 4
	}
	if len(hexAddr) != words*8 {
		return netip.Addr{}, 0, fmt.Errorf("bad address %q", hexAddr)
	}
	var raw [16]byte
	for i := 0; i < words; i++ {
		w, ok := parseHex(hexAddr[i*8 : i*8+8])
		if !ok {
			return netip.Addr{}, 0, fmt.Errorf("bad address %q", hexAddr)
		}
		binary.NativeEndian.PutUint32(raw[i*4:], uint32(w))
	}
	if !v6 {
		return netip.AddrFrom4([4]byte(raw[:4])), port, nil
	}
	return netip.AddrFrom16(raw), port, nil
}

func parseHex(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'A' && c <= 'F':
			v = v<<4 | uint64(c-'A'+10)
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

func parseDec(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}
