// Package conflict decides, for every port the manifest claims, whether it
// is free, already the user's, or held by something in the way, and by
// what. It is pure: the reading layer gathers the sockets, holders and
// unit states; package plan says what to do about each finding.
package conflict

import (
	"fmt"
	"slices"

	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/holder"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/manifest"
	"github.com/portclaim/portclaim/pkg/unitname"
)

// Kind classifies one claimed port.
type Kind string

const (
	Free        Kind = "free"         // nothing holds it
	Self        Kind = "self"         // one of the service's own user units holds it: fine
	Resolvable  Kind = "resolvable"   // a system unit the manifest names holds it
	Latent      Kind = "latent"       // free now, but a named system unit is enabled and takes it at boot
	SystemOther Kind = "system-other" // a system unit the manifest does not name holds it
	OtherUser   Kind = "other-user"   // another user's unit holds it
	UserOther   Kind = "user-other"   // another of this user's own units holds it
	NoUnit      Kind = "no-unit"      // a process outside any service unit holds it
	Unknown     Kind = "unknown"      // held, but we may not see by whom
)

// Conflict reports whether the user has to act on this kind.
func (k Kind) Conflict() bool { return k != Free && k != Self }

// Input is everything Classify reasons about.
type Input struct {
	Manifest manifest.Manifest
	UserUID  uint32 // whose user units the manifest declares
	// Sockets are those in the way of a claimed port (InWay).
	Sockets []host.Socket
	Holders map[uint64]holder.Holder // by socket inode
	// System is the state of the system units involved by name; nil when
	// the system manager could not be asked.
	System map[string]host.Unit
	// KeptDown lists the system units this user's claims keep from
	// starting: an enabled but stopped unit so claimed is not latent.
	KeptDown map[string]bool
	// Others lists the stopped units only other users' claims keep down:
	// they come back when those claims go, so they are latent for this
	// user too, whose own claim would keep them down.
	Others map[string]bool
	// NameOf turns a uid into a user name for the manager's name.
	NameOf func(uid uint32) string
}

// Finding is the verdict on one claimed port (and, when held, one socket
// holding it: a port held on two addresses gives two findings).
type Finding struct {
	Service  string
	Want     endpoint.Endpoint // the claim: where the user unit binds
	UserUnit string
	Kind     Kind
	Socket   *host.Socket // the socket in the way, when held
	Holder   holder.Holder
	Manager  string // "system", "user alice", "" when unknown
	Unit     string // the unit holding it (or, for latent, that will)
	// SystemUnit is the manifest's system unit that yields to free it
	// (resolvable, latent); its activating socket yields with it.
	SystemUnit string
}

// Classify returns the findings in manifest order. It indexes the
// sockets by port once, so its cost grows with sockets plus claimed
// ports, not with their product.
func Classify(in Input) []Finding {
	byPort := indexByPort(in.Sockets)
	var out []Finding
	for _, svc := range in.Manifest.Services {
		for _, want := range svc.Ports {
			out = append(out, classifyPort(in, byPort[portKey{want.Proto, want.Port}], svc, want)...)
		}
	}
	return out
}

type portKey struct {
	proto endpoint.Proto
	port  uint16
}

func indexByPort(socks []host.Socket) map[portKey][]int {
	idx := make(map[portKey][]int)
	for i, s := range socks {
		k := portKey{s.Proto, s.Port}
		idx[k] = append(idx[k], i)
	}
	return idx
}

// InWay returns the sockets that overlap any port the manifest claims, in
// one pass over all.
func InWay(all []host.Socket, m manifest.Manifest) []host.Socket {
	claimed := make(map[portKey][]endpoint.Endpoint)
	for _, svc := range m.Services {
		for _, p := range svc.Ports {
			k := portKey{p.Proto, p.Port}
			claimed[k] = append(claimed[k], p)
		}
	}
	var out []host.Socket
	for _, s := range all {
		for _, want := range claimed[portKey{s.Proto, s.Port}] {
			if endpoint.Overlap(want, s.Endpoint) {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// ClaimedPorts lists every port number the manifest claims.
func ClaimedPorts(m manifest.Manifest) []uint16 {
	var out []uint16
	for _, svc := range m.Services {
		for _, p := range svc.Ports {
			out = append(out, p.Port)
		}
	}
	return out
}

// SystemUnits lists the manifest's system units, each once.
func SystemUnits(m manifest.Manifest) []string {
	var names []string
	for _, svc := range m.Services {
		for _, u := range svc.SystemUnits {
			if !slices.Contains(names, u) {
				names = append(names, u)
			}
		}
	}
	return names
}

// MayBeSocketUnit reports whether a socket in the way may belong to a
// .socket unit: held by a manager itself, or root's and unattributed. Only
// then is it worth asking systemd which sockets activate the services.
func MayBeSocketUnit(inWay []host.Socket, holders map[uint64]holder.Holder) bool {
	for _, s := range inWay {
		h := holders[s.Inode]
		if h.Known() && !h.Unit.User && h.Unit.Name == unitname.ManagerScope || !h.Known() && s.UID == 0 {
			return true
		}
	}
	return false
}

// MayBeLatent reports whether a unit needs its unit file state read: it
// exists, is stopped and no claim keeps it down, so it may start at boot.
func MayBeLatent(u host.Unit, keptDown map[string]bool) bool {
	return u.Exists() && !u.Active() && !keptDown[u.Name]
}

func classifyPort(in Input, onPort []int, svc manifest.Service, want endpoint.Endpoint) []Finding {
	var out []Finding
	heldBySystemUnit := map[string]bool{}
	for _, i := range onPort {
		s := &in.Sockets[i]
		if !endpoint.Overlap(want, s.Endpoint) {
			continue
		}
		f := held(in, svc, want, s)
		if f.Kind == Resolvable {
			heldBySystemUnit[f.SystemUnit] = true
		}
		out = append(out, f)
	}
	for _, name := range svc.SystemUnits {
		u, ok := in.System[name]
		if !ok || heldBySystemUnit[name] || u.Active() || !(u.StartsAtBoot() || in.Others[name]) || in.KeptDown[name] {
			continue
		}
		f := base(svc, want)
		f.Kind, f.Manager, f.Unit, f.SystemUnit = Latent, "system", name, name
		out = append(out, f)
	}
	if len(out) == 0 {
		f := base(svc, want)
		f.Kind = Free
		out = append(out, f)
	}
	return out
}

func base(svc manifest.Service, want endpoint.Endpoint) Finding {
	f := Finding{Service: svc.Name, Want: want}
	if len(svc.UserUnits) > 0 {
		f.UserUnit = svc.UserUnits[0]
	}
	return f
}

func held(in Input, svc manifest.Service, want endpoint.Endpoint, s *host.Socket) Finding {
	f := base(svc, want)
	f.Socket = s
	h, ok := in.Holders[s.Inode]
	if !ok {
		h = holder.Holder{UID: s.UID, Confidence: holder.Unknown}
	}
	f.Holder = h
	u := h.Unit
	f.Unit = u.Name
	// A .socket unit's listening socket is held by the system manager
	// itself (pid 1 in init.scope): when a declared service is activated
	// by a socket, that socket is the holder, and it yields with the
	// service. Unprivileged, pid 1's files are closed to us: a
	// root-owned socket on the port of a declared service whose .socket
	// is listening is that socket's, probably.
	heldByManager := u.Name == unitname.ManagerScope && !u.User && h.Known()
	if service, sock := triggeringSocket(in, svc); sock != "" && (heldByManager || !h.Known() && s.UID == 0 && in.System[sock].Active()) {
		if !h.Known() {
			f.Holder.Unit = host.UnitRef{Name: sock}
			f.Holder.Confidence = holder.Probable
			f.Holder.Why = fmt.Sprintf("socket owned by root, and %s, which activates %s, is listening", sock, service)
		}
		f.Kind, f.Manager, f.Unit, f.SystemUnit = Resolvable, "system", sock, service
		return f
	}
	switch {
	case !h.Known():
		f.Kind = Unknown
	case u.User:
		f.Manager = "user " + name(in, u.UserUID)
		switch {
		case u.UserUID != in.UserUID:
			f.Kind = OtherUser
		case slices.Contains(svc.UserUnits, u.Name):
			f.Kind = Self
		default:
			f.Kind = UserOther
		}
	case u.Name == "":
		f.Kind = NoUnit
	case slices.Contains(svc.SystemUnits, u.Name):
		f.Manager, f.SystemUnit = "system", u.Name
		f.Kind = Resolvable
		if st, known := in.System[u.Name]; known && h.Confidence == holder.Probable && !st.Active() {
			// Its processes hold the port, yet systemd says it is down:
			// the guess does not agree with the unit state.
			f.Kind, f.Holder.Confidence, f.SystemUnit = Unknown, holder.Unknown, ""
			f.Holder.Why = fmt.Sprintf("a process of uid %d holds it, and %s is %s", s.UID, u.Name, st.ActiveState)
		}
	case isServiceOrSocket(u.Name):
		f.Manager = "system"
		f.Kind = SystemOther
	default:
		f.Manager = "system"
		f.Kind = NoUnit
	}
	return f
}

// triggeringSocket finds a declared system service activated by a socket
// unit, and that socket.
func triggeringSocket(in Input, svc manifest.Service) (service, socket string) {
	for _, name := range svc.SystemUnits {
		if u, ok := in.System[name]; ok && len(u.TriggeredBy) > 0 {
			return name, u.TriggeredBy[0]
		}
	}
	return "", ""
}

func isServiceOrSocket(name string) bool {
	t := unitname.Type(name)
	return t == "service" || t == "socket"
}

func name(in Input, uid uint32) string {
	if in.NameOf != nil {
		return in.NameOf(uid)
	}
	return fmt.Sprint(uid)
}

// Conflicts counts the findings that are conflicts.
func Conflicts(fs []Finding) int {
	n := 0
	for _, f := range fs {
		if f.Kind.Conflict() {
			n++
		}
	}
	return n
}
