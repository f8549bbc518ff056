// Package broker is the root broker's transport: a Unix stream socket
// (/run/portclaim/broker.sock, opened by systemd's portclaim.socket) on
// which a user asks for system units to yield or come back, and is
// answered. One request per connection, both ways one JSON object and a
// newline. The caller is who the kernel says (SO_PEERCRED); what the
// caller may do is the root-owned policy's word alone; package yield
// does it. The README documents the protocol.
package broker

// Limits on the wire.
const (
	maxRequest  = 64 << 10
	maxResponse = 4 << 20
)
