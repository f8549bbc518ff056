// Package gather is the reading layer of a check: for one manifest and one
// user it reads the socket tables, the processes behind the sockets in the
// way, the state of the units involved, the policy and the claims, into a
// Snapshot of facts. It decides nothing: it asks the pure packages
// (conflict, holder) only what it needs to read next, and returns what it
// read, not their verdicts (the caller classifies, and Shared.Follow reads
// what the verdicts call for).
// Where the machine is (places) and who holds a socket (attribute) are
// packages of their own, which the root side uses too.
//
// Its cost is one read of the socket tables, the processes of the units
// expected on the ports in the way (their cgroups; every process only when
// those do not hold the socket), one ListUnitsByPatterns on the system
// manager (and one ListUnitFilesByPatterns when a named unit is stopped
// and no claim keeps it down: it may start at boot), and only when a user
// unit is in a conflict, one ListUnitsByPatterns on the user manager.
package gather

import (
	"context"
	"fmt"
	"slices"

	"github.com/portclaim/portclaim/pkg/attribute"
	"github.com/portclaim/portclaim/pkg/claim"
	"github.com/portclaim/portclaim/pkg/claimstore"
	"github.com/portclaim/portclaim/pkg/conflict"
	"github.com/portclaim/portclaim/pkg/holder"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/manifest"
	"github.com/portclaim/portclaim/pkg/places"
	"github.com/portclaim/portclaim/pkg/policy"
	"github.com/portclaim/portclaim/pkg/sockets"
	"github.com/portclaim/portclaim/pkg/systemd"
)

// Snapshot is what one look at the machine saw, for one user's manifest.
type Snapshot struct {
	User string
	// Sockets are those on and around the claimed ports (a free port
	// nearby can be suggested); InWay those overlapping a claim.
	Sockets []host.Socket
	InWay   []host.Socket
	Holders map[uint64]holder.Holder // by socket inode
	// System is the state of the system units involved; nil when the
	// system manager could not be asked.
	System map[string]host.Unit
	// UserUnits is the state of the user units in conflicts; nil when
	// the user manager was not asked or could not be.
	UserUnits map[string]host.Unit
	// Policy is the trusted policy, nil when there is none (PolicyProblem
	// says why).
	Policy        *policy.Policy
	PolicyProblem string
	// KeptDown are the system units this user's claims keep from
	// starting; Others those only other users' claims keep down, which
	// come back (they ran before) when those claims go.
	KeptDown, Others map[string]bool
	// Broker says whether portclaim's broker socket listens; "" when no
	// finding needed to know (none is a unit that may yield).
	Broker host.Broker
	// Notes explain a partial view that is still useful; Broken what made
	// it unusable (no socket table, no system bus).
	Notes, Broken []string
	// DBusCalls counts D-Bus method calls per manager.
	DBusCalls map[string]int
}

// ConflictInput is what the snapshot read, as the classification of the
// claimed ports takes it (conflict.Classify): for the user uid and their
// manifest m; nameOf names the other users the verdicts mention.
func (s Snapshot) ConflictInput(m manifest.Manifest, uid uint32, nameOf func(uint32) string) conflict.Input {
	return conflict.Input{Manifest: m, UserUID: uid, Sockets: s.InWay, Holders: s.Holders,
		System: s.System, KeptDown: s.KeptDown, Others: s.Others, NameOf: nameOf}
}

// Shared is what the looks and holder lookups of one run share (status
// --format prometheus looks once per user): the policy and the broker's
// socket, read once; the system manager's connection, dialed on first
// need; and what was read of the processes. Make one with Share, and
// Close it.
type Shared struct {
	at            places.Places
	policy        *policy.Policy
	policyProblem string
	broker        host.Broker // "" until asked
	attr          *attribute.Attributor
	dialed        bool
	sys           *systemd.Manager
	sysErr        error
}

// Share starts what looks at at share, with the policy already read
// (LoadPolicy).
func Share(at places.Places, pol *policy.Policy, policyProblem string) *Shared {
	return &Shared{at: at, policy: pol, policyProblem: policyProblem, attr: attribute.New(at)}
}

// Broker says whether portclaim's broker socket listens, read once, on
// first need.
func (sh *Shared) Broker() host.Broker {
	if sh.broker == "" {
		sh.broker = sh.at.Broker()
	}
	return sh.broker
}

// system is the system manager's connection, dialed once; it lives as
// long as the first ctx.
func (sh *Shared) system(ctx context.Context) (*systemd.Manager, error) {
	if !sh.dialed {
		sh.dialed = true
		sh.sys, sh.sysErr = systemd.System(ctx)
	}
	return sh.sys, sh.sysErr
}

// Close closes the system manager's connection, if one was dialed.
func (sh *Shared) Close() {
	if sh.sys != nil {
		sh.sys.Close()
		sh.sys = nil
	}
}

// Look reads the system side of the machine for m, for the user uid
// named user: the sockets in the way and their holders, the system units
// involved and the claims on them. The caller classifies what it read
// (conflict.Classify of Snapshot.ConflictInput), then Follow reads what
// the verdicts call for. Its connections live as long as ctx, whose
// deadline bounds every call.
func (sh *Shared) Look(ctx context.Context, m manifest.Manifest, uid uint32, user string) Snapshot {
	at := sh.at
	s := Snapshot{User: user, DBusCalls: map[string]int{}, KeptDown: map[string]bool{}, Others: map[string]bool{}}
	s.Policy, s.PolicyProblem = sh.policy, sh.policyProblem
	if len(m.Services) == 0 {
		return s // nothing claimed: nothing to read, no bus to ask
	}
	if ports := conflict.ClaimedPorts(m); len(ports) > 0 {
		tab, err := sockets.Read(at.ProcRoot, sockets.Around(ports, host.NearbyPorts)...)
		if err != nil {
			s.Broken = append(s.Broken, err.Error())
		}
		s.Sockets = tab.Sockets
	}
	s.InWay = conflict.InWay(s.Sockets, m)
	s.Holders = map[uint64]holder.Holder{}
	for _, sock := range s.InWay {
		s.Holders[sock.Inode] = sh.attr.One(sock, holder.Expected(m, sock, uid))
	}

	var store *claimstore.Store // found on first need: a check rarely needs it
	noteClaims := func(u host.Unit) {
		if store == nil {
			store = &claimstore.Store{Dir: places.ClaimsDir(s.Policy, at.ServedNote)}
		}
		s.KeptDown[u.Name], s.Others[u.Name] = claimsOn(*store, u.Name, s.User, at)
	}
	sys, err := sh.system(ctx)
	if err != nil {
		s.Broken = append(s.Broken, sh.unreachable(ctx, "the system manager on the system bus", err)+": system unit state is unknown, so no unit can be checked or resolved")
	} else {
		callsBefore := sys.Calls
		names := systemNames(m, s.Holders)
		// A .socket unit's listener belongs to pid 1: where a socket in
		// the way may be one, the sockets that would activate the
		// declared services are asked about in the same call.
		triggers := conflict.MayBeSocketUnit(s.InWay, s.Holders)
		socketOnly := map[string]bool{}
		if triggers {
			for _, sock := range systemd.SocketsFor(conflict.SystemUnits(m)) {
				if !slices.Contains(names, sock) {
					names = append(names, sock)
					socketOnly[sock] = true
				}
			}
		}
		units, err := sys.Units(ctx, names, func(u host.Unit) bool {
			// The unit file state only matters for a stopped unit that
			// may start at boot and that no claim keeps down; of an
			// activating socket, its state is enough.
			if socketOnly[u.Name] {
				return false
			}
			if u.Exists() && !u.Active() {
				noteClaims(u)
			}
			return conflict.MayBeLatent(u, s.KeptDown)
		})
		if err == nil && triggers {
			systemd.LinkTriggers(conflict.SystemUnits(m), units)
		}
		if err != nil {
			s.Broken = append(s.Broken, sh.unreachable(ctx, "the system manager on the system bus", err)+": system unit state is unknown, so no unit can be checked or resolved")
		} else {
			s.System = units
		}
		s.DBusCalls["system"] = sys.Calls - callsBefore
	}
	return s
}

// Follow reads into s what the verdicts on it (findings) call for:
// whether the broker listens, only where a unit may yield (the kernel's
// table of Unix sockets is read only then), and the state of the user
// units in conflicts.
func (sh *Shared) Follow(ctx context.Context, s *Snapshot, m manifest.Manifest, uid uint32, findings []conflict.Finding) {
	if len(m.Services) == 0 {
		return
	}
	for _, f := range findings {
		if f.Kind == conflict.Resolvable || f.Kind == conflict.Latent {
			s.Broker = sh.Broker()
			break
		}
	}
	s.userSide(ctx, m, uid, sh.at, findings)
}

// unreachable says why a manager did not answer: the run's time ran out
// (--timeout), systemd does not run this machine, or err.
func (sh *Shared) unreachable(ctx context.Context, what string, err error) string {
	switch {
	case ctx.Err() != nil:
		return fmt.Sprintf("the run's time (--timeout) ran out before %s answered", what)
	case !sh.at.SystemdRuns():
		return fmt.Sprintf("systemd does not run this machine (no %s): %v", sh.at.Booted, err)
	}
	return err.Error()
}

// claimsOn says whether user's claim keeps unit from starting (a
// condition claim: the NixOS module gives every unit the policy lets
// yield its condition; or a root-mode mask still in place; a record
// portclaim cannot read still exists, and keeps it down), and whether it
// comes back by itself: only other users' claims keep it down while it
// ran before them, or the user's own release of it is under way.
func claimsOn(store claimstore.Store, unit, user string, at places.Places) (mine, others bool) {
	entries, _ := store.OnUnit(unit)
	for _, e := range entries {
		down := false
		switch {
		case e.Releasing:
		case e.Problem != "", e.Claim.Method == claim.ByCondition:
			down = true
		case e.Claim.Method == claim.ByTransientMask:
			down = at.Masked(unit)
		}
		switch {
		case e.User == user && e.Releasing:
			others = others || e.Problem == "" && e.Claim.Prior.WasActive()
		case e.User == user:
			mine = mine || down
		case down && (e.Problem != "" || e.Claim.Prior.WasActive()):
			others = true
		}
	}
	return mine, others && !mine
}

// userSide asks the user manager about the user units in the way (the
// report shows their state; under strategy disable-user also whether a
// unit file or a generator made them), and notes when that manager is
// not running, and why where portclaim can tell.
func (s *Snapshot) userSide(ctx context.Context, m manifest.Manifest, uid uint32, at places.Places, findings []conflict.Finding) {
	var names []string
	for _, f := range findings {
		if f.Kind.Conflict() && f.UserUnit != "" && !slices.Contains(names, f.UserUnit) {
			names = append(names, f.UserUnit)
		}
	}
	path := systemd.UserBusPath(int(uid))
	if uid == 0 && !places.IsSocket(path) {
		return // root's own units are system units; its user manager rarely runs
	}
	unchecked := fmt.Sprintf("%s's user units are not checked, the system side is", s.User)
	if len(names) == 0 {
		if !places.IsSocket(path) && len(m.Services) > 0 && uid != 0 {
			s.Notes = append(s.Notes, fmt.Sprintf("%s's user manager is not running (%s); the user units are not checked, the system side is%s",
				s.User, path, managerDown(at, s.User, uid)))
		}
		return
	}
	if ctx.Err() != nil {
		s.Notes = append(s.Notes, fmt.Sprintf("the run's time (--timeout) ran out before %s's user manager answered; %s", s.User, unchecked))
		return
	}
	mgr, err := systemd.User(ctx, int(uid))
	if err != nil {
		if ctx.Err() != nil {
			s.Notes = append(s.Notes, fmt.Sprintf("the run's time (--timeout) ran out before %s's user manager answered; %s", s.User, unchecked))
			return
		}
		s.Notes = append(s.Notes, fmt.Sprintf("%v; %s%s", err, unchecked, managerDown(at, s.User, uid)))
		return
	}
	defer mgr.Close()
	var needFile func(host.Unit) bool
	if m.Strategy == manifest.DisableUser {
		needFile = func(u host.Unit) bool { return u.Exists() }
	}
	units, err := mgr.Units(ctx, names, needFile)
	s.DBusCalls["user"] = mgr.Calls
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("the run's time (--timeout) ran out before %s's user manager answered", s.User)
		}
		s.Notes = append(s.Notes, fmt.Sprintf("%v; %s", err, unchecked))
		return
	}
	s.UserUnits = units
}

// managerDown is the next step for a user manager that is not running:
// lingering, for a user who does not linger on a machine systemd runs;
// for one who does, the manager's own unit.
func managerDown(at places.Places, name string, uid uint32) string {
	switch {
	case uid == 0 || !at.SystemdRuns():
		return ""
	case at.Lingers(name):
		return fmt.Sprintf(" (%s lingers, so it should: `systemctl status user@%d.service` says why not)", name, uid)
	}
	return fmt.Sprintf(" (to have it run from boot: `loginctl enable-linger %s`)", name)
}

// systemNames are the system units to ask about: the declared ones and
// the holders found.
func systemNames(m manifest.Manifest, holders map[uint64]holder.Holder) []string {
	names := conflict.SystemUnits(m)
	for _, h := range holders {
		if h.Known() && !h.Unit.User && h.Unit.Name != "" && !slices.Contains(names, h.Unit.Name) {
			names = append(names, h.Unit.Name)
		}
	}
	return names
}

// Who answers attribute.Who for every query (status: each claimed port),
// in one read of the socket tables, with what this run read of the
// processes.
func (sh *Shared) Who(qs []attribute.Query) ([][]attribute.Held, error) { return sh.attr.Who(qs) }
