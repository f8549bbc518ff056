// Package endpoint answers one question the way the Linux kernel does: would
// two sockets bound to these addresses collide? A conflict is a real bind
// overlap, not a textual match on ":PORT".
package endpoint

import (
	"fmt"
	"net/netip"
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
