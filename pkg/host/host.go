// Package host holds the data portclaim reads off a machine — sockets,
// processes, systemd units — as plain types. The packages that read them
// (sockets, processes, systemd) fill these; the packages that decide
// (holder, conflict, plan) take them, and so never import the reading
// code, D-Bus or netlink.
package host

import (
	"strings"
	"unicode/utf8"

	"github.com/portclaim/portclaim/pkg/endpoint"
)

// NearbyPorts is how far around each claimed port the sockets are read
// (gather) and, so, how far from it a free port can be suggested (plan).
const NearbyPorts = 100

// Socket is one listening TCP or bound UDP socket.
type Socket struct {
	endpoint.Endpoint
	UID   uint32
	Inode uint64
	// CgroupID is the id (the inode) of the cgroup v2 directory of the
	// process that created the socket, from sock_diag; 0 when unknown.
	CgroupID uint64
}

// UnitRef names a unit of the system manager, or of the user manager of
// UserUID. An empty Name means no unit portclaim can name (a process in
// a cgroup outside this machine's tree, or in the root).
type UnitRef struct {
	User    bool
	UserUID uint32
	Name    string
}

// Process is one entry of /proc.
type Process struct {
	PID     int
	UID     uint32 // real uid
	Command string // comm, as ps -o comm shows it
	Unit    UnitRef
}

// Unit is the state of one unit in one manager.
type Unit struct {
	Name          string
	LoadState     string // loaded, not-found, masked, ...
	ActiveState   string // active, inactive, failed, activating, ...
	UnitFileState string // enabled, disabled, static, ... ("" when not asked, or no unit file)
	// TriggeredBy lists the unit's activating .socket when that socket is
	// loaded: the .socket holds the port even while the service is down.
	TriggeredBy []string
}

// Active reports whether the unit is running or about to be.
func (u Unit) Active() bool {
	switch u.ActiveState {
	case "active", "activating", "reloading", "refreshing":
		return true
	}
	return false
}

// Exists reports whether systemd has it loaded from a unit file.
func (u Unit) Exists() bool { return u.LoadState != "" && u.LoadState != "not-found" }

// StartsAtBoot reports whether an inactive unit will be started at boot:
// it is enabled (symlinked into a .wants directory, as NixOS does for
// every wantedBy unit).
func (u Unit) StartsAtBoot() bool {
	return u.UnitFileState == "enabled" || u.UnitFileState == "enabled-runtime"
}

// Condition is one of a unit's Condition*= settings.
type Condition struct {
	Type    string // "ConditionPathExists"
	Negate  bool   // "!path"
	Param   string // the path
	Trigger bool   // "|path": ORed instead of ANDed
}

// KeptDownBy reports whether conds include ConditionPathExists=!path: the
// unit is skipped while path exists.
func KeptDownBy(conds []Condition, path string) bool {
	for _, c := range conds {
		if c.Type == "ConditionPathExists" && c.Negate && !c.Trigger && c.Param == path {
			return true
		}
	}
	return false
}

// Printable replaces what a terminal would act on — control characters,
// escape sequences' introducers, DEL, C1 controls, invalid UTF-8 — with
// '?'. Text that a user controls (a process's name, a cgroup's path, a
// record in their home) passes through it before root prints it, so that
// it cannot rewrite root's terminal.
func Printable(s string) string {
	clean := true
	for _, r := range s {
		if unprintable(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	return strings.Map(func(r rune) rune {
		if unprintable(r) {
			return '?'
		}
		return r
	}, s)
}

func unprintable(r rune) bool {
	return r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f || r == utf8.RuneError
}

// Broker is what portclaim's broker socket is like now.
type Broker string

const (
	// BrokerListening: something listens at the socket (systemd's
	// portclaim.socket): a connection would be answered.
	BrokerListening Broker = "listening"
	// BrokerStopped: the socket file is there but nothing listens on it
	// (portclaim.socket was stopped, or failed).
	BrokerStopped Broker = "stopped"
	// BrokerMissing: no socket file (portclaim's NixOS module is not on
	// this machine).
	BrokerMissing Broker = "missing"
)
