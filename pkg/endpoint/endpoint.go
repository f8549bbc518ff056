// Package endpoint answers one question the way the Linux kernel does: would
// two sockets bound to these addresses collide? A conflict is a real bind
// overlap, not a textual match on ":PORT".
package endpoint

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Proto is a transport protocol: "tcp" or "udp".
type Proto string

const (
	TCP Proto = "tcp"
	UDP Proto = "udp"
)

// Endpoint is one bound address. An invalid Addr (the zero value) means
// "every address on both stacks": what a user unit declared with
// address "" binds (podman's rootlessport binds 0.0.0.0 and [::]).
type Endpoint struct {
	Proto Proto
	Addr  netip.Addr
	Port  uint16
	// V6Only is set for an IPv6 socket that does not accept IPv4
	// (IPV6_V6ONLY). A "::" socket without it is dual-stack and also
	// covers every IPv4 address.
	V6Only bool
}

// All reports whether e stands for every address on both stacks.
func (e Endpoint) All() bool { return !e.Addr.IsValid() }

// String renders e the way ss(8) does: 127.0.0.1:80, [::]:80, *:80.
func (e Endpoint) String() string {
	if e.All() {
		return fmt.Sprintf("*:%d", e.Port)
	}
	return netip.AddrPortFrom(e.Addr, e.Port).String()
}

// HostString renders just the address part: 127.0.0.1, ::, or * for all.
func (e Endpoint) HostString() string {
	if e.All() {
		return "*"
	}
	return e.Addr.String()
}

// Overlap reports whether binding a and b at the same time would fail with
// EADDRINUSE on Linux (ignoring SO_REUSEPORT, which both sides would have
// to set on purpose). Rules:
//   - different protocols or ports never collide;
//   - equal addresses collide;
//   - a wildcard (0.0.0.0, ::) collides with every address of its family;
//   - a dual-stack :: also collides with every IPv4 address, a v6-only
//     one does not;
//   - "all addresses" (an invalid Addr) collides with everything.
func Overlap(a, b Endpoint) bool {
	if a.Proto != b.Proto || a.Port != b.Port {
		return false
	}
	if a.All() || b.All() {
		return true
	}
	x, y := a.Addr.Unmap(), b.Addr.Unmap()
	switch {
	case x.Is4() && y.Is4(), x.Is6() && y.Is6():
		return x == y || x.IsUnspecified() || y.IsUnspecified()
	case x.Is6():
		return coversIPv4(x, a.V6Only)
	default:
		return coversIPv4(y, b.V6Only)
	}
}

// coversIPv4 reports whether an IPv6 socket on addr also holds IPv4
// addresses: only the dual-stack wildcard does. (An IPv4-mapped address has
// already been unmapped to IPv4 by the caller.)
func coversIPv4(addr netip.Addr, v6only bool) bool {
	return addr.IsUnspecified() && !v6only
}

// PortProto is the one way portclaim writes a port: "11434/tcp".
func (e Endpoint) PortProto() string { return strconv.Itoa(int(e.Port)) + "/" + string(e.Proto) }

// PortList writes ports as "11434/tcp, 6333/tcp".
func PortList(eps []Endpoint) string {
	out := make([]string, len(eps))
	for i, e := range eps {
		out[i] = e.PortProto()
	}
	return strings.Join(out, ", ")
}

// ParseAddress reads an address as the manifest, the claims and the
// broker protocol write it: "" for every address, else an IP address
// ("127.0.0.1", "::1"; no brackets, no zone).
func ParseAddress(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address; use \"\" for all addresses, or e.g. \"127.0.0.1\" or \"::1\"", s)
	}
	return a, nil
}

// ParseProto reads "tcp" or "udp".
func ParseProto(s string) (Proto, error) {
	switch p := Proto(s); p {
	case TCP, UDP:
		return p, nil
	}
	return "", fmt.Errorf("%q is not a protocol; use \"tcp\" or \"udp\"", s)
}

// wire is an endpoint as JSON: {"port": 11434, "protocol": "tcp", "address": ""}.
type wire struct {
	Port     uint16 `json:"port"`
	Protocol string `json:"protocol"`
	Address  string `json:"address"`
}

// MarshalJSON writes e as the manifest does.
func (e Endpoint) MarshalJSON() ([]byte, error) {
	w := wire{Port: e.Port, Protocol: string(e.Proto)}
	if !e.All() {
		w.Address = e.Addr.String()
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads what MarshalJSON writes, and refuses anything else:
// a claim or a request naming a port that cannot be checked is an error,
// never a port silently dropped.
func (e *Endpoint) UnmarshalJSON(b []byte) error {
	var w wire
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return fmt.Errorf("a port must be {port, protocol, address}: %w", err)
	}
	proto, err := ParseProto(w.Protocol)
	if err != nil {
		return err
	}
	if w.Port == 0 {
		return fmt.Errorf("port 0 is not a port (a whole number from 1 to 65535)")
	}
	addr, err := ParseAddress(w.Address)
	if err != nil {
		return err
	}
	*e = Endpoint{Proto: proto, Addr: addr, Port: w.Port}
	return nil
}
