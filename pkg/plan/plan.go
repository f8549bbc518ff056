// Package plan turns what check found into what is said and done: for
// every conflict, who can fix it and the exact fix (the configuration.nix
// or home.nix line, the command), and for resolve, the yields to ask for.
// check and resolve share it, so they never disagree. The root side's
// decisions (what to claim, stop and start, in which order) are here too,
// in root.go (yields) and release.go. It is pure: it reads nothing and changes nothing.
package plan

import (
	"slices"
	"strings"

	"github.com/portclaim/portclaim/pkg/conflict"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/manifest"
	"github.com/portclaim/portclaim/pkg/policy"
	"github.com/portclaim/portclaim/pkg/unitname"
)

// Who can fix a conflict. It is the one classification check, resolve and
// status read: the label of each conflict, the counts in a summary and
// whether resolve acts on it all come from it.
type Who string

const (
	// ByResolve: `portclaim resolve`, run now, makes the unit yield (the
	// policy lets it yield to you and the broker listens, or you are
	// root acting for the user).
	ByResolve Who = "resolve"
	// ByAdmin: a change to configuration.nix (NixOS lines given), or the
	// broker's socket started again.
	ByAdmin Who = "admin"
	// ByRoot: root, now (commands given).
	ByRoot Who = "root"
	// ByYou: your own units or home.nix, or resolve with --yes.
	ByYou Who = "you"
	// ByOtherUser: the user whose unit holds the port.
	ByOtherUser Who = "other-user"
)

// Whos lists every Who in the order a summary names them.
var Whos = []Who{ByResolve, ByAdmin, ByRoot, ByYou, ByOtherUser}

// Remedy is what to do about one conflict: why it is whose to fix, and
// the ways to fix it, each one thing to do with its exact lines.
type Remedy struct {
	Who Who
	// Says why the conflict is Who's to fix, in one short clause; what
	// holds the port is said by the finding.
	Says string
	// Ways are the alternatives, the usual one first. A way's Do begins
	// with "or " when it is another way, "and " when it goes with the
	// one before.
	Ways []Way
	// The lines of every way by kind, for programs: configuration.nix,
	// home.nix, commands; and the free port a move names, with its
	// home.nix line ("" when none is known).
	NixOS    []string
	Home     []string
	Commands []string
	MovePort uint16
	MoveLine string
}

// Way is one way to fix a conflict: what to do, in which file ("" for
// commands), and the lines to add or run.
type Way struct {
	Do    string
	In    string
	Lines []string
}

// Files a Way names.
const (
	InNixOS = "configuration.nix"
	InHome  = "home.nix"
)

// Item is one conflict and its remedy.
type Item struct {
	Finding conflict.Finding
	Remedy  Remedy
}

// Yield is one group of system units resolve asks to yield: a service
// with the socket that activates it (socket first, so it cannot start the
// service again while it stops), for the ports of one claim.
type Yield struct {
	Service string
	Units   []string
	Ports   []endpoint.Endpoint
}

// Plan is what check says and resolve does.
type Plan struct {
	Items  []Item
	Yields []Yield
	// Unasked are the yields a declined run (Input.Declined) would have
	// asked for with consent.
	Unasked []Yield
}

// Input is what Make plans from.
type Input struct {
	Manifest manifest.Manifest
	Findings []conflict.Finding
	User     string
	// Root: root reads and acts for User (`portclaim resolve --user
	// alice`): root may make any unit the manifest names yield.
	Root          bool
	Policy        *policy.Policy // nil when none is installed or trusted
	PolicyProblem string         // why Policy is nil
	Broker        host.Broker    // whether the broker's socket listens
	BrokerSocket  string         // where it was looked for
	// Declined: this run of resolve acts only when asked, and there is no
	// terminal to ask on (root for a user without --yes; autoResolve
	// off): what it would do is the user's or root's to run with --yes.
	Declined  bool
	System    map[string]host.Unit
	UserUnits map[string]host.Unit // the user units in conflicts, as far as known
	Sockets   []host.Socket        // on and around the claimed ports
}

// Make plans every conflict in in.Findings.
func Make(in Input) Plan {
	var p Plan
	yielding := map[string]bool{} // system units in p.Yields or p.Unasked
	consenting := in
	consenting.Declined = false
	for _, f := range in.Findings {
		if !f.Kind.Conflict() {
			continue
		}
		r := remedy(in, f)
		y := Yield{Service: f.Service, Units: Group(in.System, f.SystemUnit), Ports: servicePorts(in.Manifest, f.Service)}
		switch {
		case yielding[f.SystemUnit]:
		case r.Who == ByResolve:
			yielding[f.SystemUnit] = true
			p.Yields = append(p.Yields, y)
		case in.Declined && remedy(consenting, f).Who == ByResolve:
			yielding[f.SystemUnit] = true
			p.Unasked = append(p.Unasked, y)
		}
		p.Items = append(p.Items, Item{Finding: f, Remedy: r})
	}
	moveAway(in, p.Items)
	for i := range p.Items {
		p.Items[i].Remedy.flatten()
	}
	return p
}

// Group is a system unit with the socket that activates it, socket first.
func Group(system map[string]host.Unit, unit string) []string {
	if u, ok := system[unit]; ok && len(u.TriggeredBy) > 0 {
		return append(slices.Clone(u.TriggeredBy), unit)
	}
	return []string{unit}
}

func servicePorts(m manifest.Manifest, name string) []endpoint.Endpoint {
	for _, s := range m.Services {
		if s.Name == name {
			return s.Ports
		}
	}
	return nil
}

func serviceOf(m manifest.Manifest, name string) manifest.Service {
	for _, s := range m.Services {
		if s.Name == name {
			return s
		}
	}
	return manifest.Service{Name: name}
}

// Text is a remedy in one line, for programs (the JSON documents'
// "next"): why, then each way.
func (r Remedy) Text() string {
	s := r.Says
	for _, w := range r.Ways {
		s += "; " + w.Text()
	}
	return s
}

// Text is a way in one line: what to do, where, and its lines.
func (w Way) Text() string {
	s := w.Do
	if w.In != "" {
		s += ", in " + w.In
	}
	if len(w.Lines) == 0 {
		return s
	}
	if s == "" {
		return strings.Join(w.Lines, " ")
	}
	return s + ": " + strings.Join(w.Lines, " ")
}

// socketFirst orders units so a service's activating socket comes first.
func socketFirst(units []string) []string {
	out := slices.Clone(units)
	slices.SortStableFunc(out, func(a, b string) int {
		return strings.Compare(orderKey(a), orderKey(b))
	})
	return out
}

func orderKey(unit string) string {
	if unitname.Type(unit) == "socket" {
		return unitname.Base(unit) + ".0"
	}
	return unitname.Base(unit) + ".1"
}
