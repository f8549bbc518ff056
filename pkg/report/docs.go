package report

import (
	"github.com/portclaim/portclaim/pkg/holder"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/protocol"
)

// The JSON documents of the commands, besides check's (report.go): the
// README ("JSON") documents them, and cmd/portclaim's tests pin them.

// Manifest says where a run's claims came from: the file and how it was
// found.
type Manifest struct {
	// Path is the file read; "" for the built-in map.
	Path string `json:"path"`
	// Kind: "given" (--manifest), "linked" (the one the home-manager
	// module links to $XDG_CONFIG_HOME/portclaim/manifest.json) or
	// "built-in" (no manifest: the built-in map of known services).
	Kind string `json:"kind"`
}

// Manifest kinds.
const (
	ManifestGiven   = "given"
	ManifestLinked  = "linked"
	ManifestBuiltIn = "built-in"
)

// String is the manifest as a person reads it: its path, or the built-in
// map.
func (m Manifest) String() string {
	if m.Kind == ManifestBuiltIn {
		return "the built-in map of known services"
	}
	return m.Path
}

// UsersDoc is root's `check --json` without --user: every user's check.
type UsersDoc struct {
	Users []CheckDoc `json:"users"`
	// Machine, when root looks after no user, is what holds each port of
	// the built-in map on this machine, for the users to come.
	Machine []MachinePort `json:"machine,omitempty"`
	// Notes say which users were not checked, and why.
	Notes []string `json:"notes"`
}

// MachinePort is one port of the built-in map and what holds it (no
// sockets: it is free).
type MachinePort struct {
	Service string `json:"service"`
	WhoDoc
}

// HeldDoc is one socket on a port and who holds it, as status writes the
// holders of each claimed port.
type HeldDoc struct {
	Port     uint16 `json:"port"`
	Protocol string `json:"protocol"`
	// Address is where the socket is bound, with its port
	// ("127.0.0.1:11434", "[::]:11434").
	Address string `json:"address"`
	// Unit and Manager ("system", "user alice") name the holder's unit;
	// PID and Process its lowest process; "" and 0 where not known.
	Unit       string `json:"unit"`
	Manager    string `json:"manager"`
	PID        int    `json:"pid"`
	Process    string `json:"process"`
	Confidence string `json:"confidence"`
	// Says is the holder as the text shows it.
	Says string `json:"says"`
}

// HeldDocOf describes one socket and its holder.
func HeldDocOf(s host.Socket, manager string, h holder.Holder, nameOf func(uint32) string) HeldDoc {
	d := HeldDoc{Port: s.Port, Protocol: string(s.Proto), Address: s.Endpoint.String(), Unit: h.Unit.Name, Manager: manager,
		PID: h.PID, Process: h.Command, Confidence: string(h.Confidence), Says: Who(h, nameOf)}
	if !h.Known() || h.Unit.Name == "" {
		d.Manager = ""
	}
	return d
}

// ReconcileDoc is reconcile's JSON document: what it gave back or
// finished, user by user (none: nothing to do).
type ReconcileDoc struct {
	Users  []ReconcileUser `json:"users"`
	Notes  []string        `json:"notes"`
	Errors []string        `json:"errors"`
}

// ReconcileUser is what reconcile did for one user's claims.
type ReconcileUser struct {
	User    string                 `json:"user"`
	Release protocol.ReleaseResult `json:"release"`
}
