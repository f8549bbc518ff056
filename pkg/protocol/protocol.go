// Package protocol is the broker protocol's vocabulary: what a user asks
// of root's broker (yield these units, give those back, my status) and
// what is answered, unit by unit. The broker (transport), the root side
// that acts (package yield), the clients and the reports all speak it;
// it imports nothing of theirs. One request per connection, both ways one
// JSON object and a newline (README "The broker protocol"): change these
// types only additively, or with Version.
package protocol

import (
	"fmt"
	"time"

	"github.com/portclaim/portclaim/pkg/claim"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/manifest"
	"github.com/portclaim/portclaim/pkg/unitname"
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
	Version int             `json:"version"`
	Op      string          `json:"op"`
	Yield   *YieldRequest   `json:"yield,omitempty"`
	Release *ReleaseRequest `json:"release,omitempty"`
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

	Yield   *YieldResult   `json:"yield,omitempty"`
	Release *ReleaseResult `json:"release,omitempty"`
	Status  *Status        `json:"status,omitempty"`
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

// YieldRequest asks that a service's system units yield for its ports.
type YieldRequest struct {
	Service string              `json:"service"`
	Units   []string            `json:"units"` // the service, and the socket that activates it
	Ports   []endpoint.Endpoint `json:"ports"`
}

// ReleaseRequest asks to give claims back: the named units (with what was
// stopped along with them), or all of the caller's.
type ReleaseRequest struct {
	Units []string `json:"units,omitempty"`
	All   bool     `json:"all,omitempty"`
}

// Outcome is what happened to one unit.
type Outcome string

const (
	Stopped       Outcome = "stopped"        // claimed and stopped
	KeptDown      Outcome = "kept-down"      // claimed; it was not running
	Already       Outcome = "already"        // claimed before (a second run, or after a crash)
	StillStopping Outcome = "still-stopping" // claimed; its stop job outlasted the wait
	Failed        Outcome = "failed"         // see Detail; what this run did was undone or recorded
	RolledBack    Outcome = "rolled-back"    // claimed, then given back because another step failed
	Restarted     Outcome = "restarted"      // claim given back, unit started again
	Removed       Outcome = "removed"        // claim given back, unit left as it is (Detail says why)
	Deferred      Outcome = "deferred"       // claim kept for a later run (Detail says why)
	Kept          Outcome = "kept"           // a record that cannot be read, left alone
)

// UnitResult is one unit's outcome.
type UnitResult struct {
	Unit    string  `json:"unit"`
	Outcome Outcome `json:"outcome"`
	Detail  string  `json:"detail,omitempty"`
	// With names the unit this one was stopped with (a dependent).
	With string `json:"with,omitempty"`
	// Held is the caller's own socket a deferred release waits for.
	Held *HeldSocket `json:"held,omitempty"`
}

// HeldSocket is a socket of the caller's that keeps a release waiting.
// Detail names its holder as the broker can (its unit, from the socket's
// cgroup: the broker reads no user's open files); the caller, who can
// read its own, may name the process too, as `portclaim who` does.
type HeldSocket struct {
	Socket endpoint.Endpoint `json:"socket"`
	Inode  uint64            `json:"inode"`
	// Holder is how Detail names the holder.
	Holder string `json:"holder"`
}

// Refusal says why nothing was done and what would allow it.
type Refusal struct {
	Units    []string `json:"units,omitempty"` // not allowed to yield to the caller
	Says     string   `json:"says"`
	NixOS    string   `json:"nixos,omitempty"` // the configuration.nix line that would allow it
	Problems []string `json:"problems,omitempty"`
}

// YieldResult is the answer to a YieldRequest.
type YieldResult struct {
	Service string       `json:"service"`
	Units   []UnitResult `json:"units"`
	Refused *Refusal     `json:"refused,omitempty"`
	// PortsFree reports whether the ports were free of other users'
	// sockets when the yield ended; HeldBy says what holds one if not.
	PortsFree bool     `json:"portsFree"`
	HeldBy    string   `json:"heldBy,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
}

// ReleaseResult is the answer to a ReleaseRequest (and what reconcile did).
type ReleaseResult struct {
	Units []UnitResult `json:"units"`
}

// Limits on one request: a service has a unit and a socket, and a few
// ports; more is not a request a home-manager switch makes.
const (
	MaxUnits = 8
	maxPorts = 256
)

// Check validates a request before anything is read or locked.
func (r YieldRequest) Check() error {
	if len(r.Service) > 128 || !manifest.ValidName(r.Service) {
		return fmt.Errorf("service %q is not a service name", r.Service)
	}
	if len(r.Units) == 0 || len(r.Units) > MaxUnits {
		return fmt.Errorf("a yield names 1 to %d units, not %d", MaxUnits, len(r.Units))
	}
	for _, u := range r.Units {
		if !unitname.Claimable(u) {
			return fmt.Errorf("%q is not a .service or .socket unit", u)
		}
	}
	if len(r.Ports) == 0 || len(r.Ports) > maxPorts {
		return fmt.Errorf("a yield names 1 to %d ports, not %d", maxPorts, len(r.Ports))
	}
	return nil
}

// Check validates a request before anything is read or locked.
func (r ReleaseRequest) Check() error {
	if r.All == (len(r.Units) > 0) {
		return fmt.Errorf("a release names units or says all, not both or neither")
	}
	if len(r.Units) > MaxUnits*8 {
		return fmt.Errorf("a release names at most %d units", MaxUnits*8)
	}
	for _, u := range r.Units {
		if !unitname.Claimable(u) {
			return fmt.Errorf("%q is not a .service or .socket unit", u)
		}
	}
	return nil
}
