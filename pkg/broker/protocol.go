// Package broker is the root broker's transport: a Unix stream socket
// (/run/portclaim/broker.sock, opened by systemd's portclaim.socket) on
// which a user asks for system units to yield or come back, and is
// answered. One request per connection, both ways one JSON object and a
// newline. The caller is who the kernel says (SO_PEERCRED); what the
// caller may do is the root-owned policy's word alone; package yield
// does it. The README documents the protocol.
package broker

import (
	"time"

	"github.com/portclaim/portclaim/pkg/claim"
	"github.com/portclaim/portclaim/pkg/yield"
)

// Version is the protocol version; a request of another is refused with
// a message naming both.
const Version = 1

// Ops a request may name.
const (
	OpYield   = "yield"
	OpRelease = "release"
	OpStatus  = "status"
)

// Request is what a client sends.
type Request struct {
	Version int                   `json:"version"`
	Op      string                `json:"op"`
	Yield   *yield.YieldRequest   `json:"yield,omitempty"`
	Release *yield.ReleaseRequest `json:"release,omitempty"`
	// WaitMS is how long, in milliseconds, to wait for each job and for
	// ports to change hands (0: the broker's default; capped by it).
	WaitMS int64 `json:"waitMs,omitempty"`
}

// Error codes.
const (
	CodeBadRequest = "bad-request" // the request is malformed, or names what no claim can
	CodeNotAllowed = "not-allowed" // root, or a uid without a user name
	CodeBusy       = "busy"        // too many connections from this uid
	CodeFailed     = "failed"      // the broker could not act (no policy, no system bus, the lock)
)

// Response is what the broker answers.
type Response struct {
	Version int    `json:"version"`
	OK      bool   `json:"ok"`
	User    string `json:"user,omitempty"` // who the broker acted for
	Error   string `json:"error,omitempty"`
	Code    string `json:"code,omitempty"`

	Yield   *yield.YieldResult   `json:"yield,omitempty"`
	Release *yield.ReleaseResult `json:"release,omitempty"`
	Status  *Status              `json:"status,omitempty"`
}

// Status is the caller's standing with the broker.
type Status struct {
	// Allowed are the units the policy lets yield to the caller.
	Allowed []string `json:"allowed"`
	Claims  []Record `json:"claims"`
}

// Record is one of the caller's claim records, as the broker reads it.
type Record struct {
	Unit      string       `json:"unit"`
	Releasing bool         `json:"releasing,omitempty"`
	Problem   string       `json:"problem,omitempty"`
	Service   string       `json:"service,omitempty"`
	ClaimedAt time.Time    `json:"claimedAt,omitzero"`
	Method    string       `json:"method,omitempty"`
	Prior     *claim.Prior `json:"prior,omitempty"`
	With      string       `json:"with,omitempty"`
}

// Limits on the wire.
const (
	maxRequest  = 64 << 10
	maxResponse = 4 << 20
)
