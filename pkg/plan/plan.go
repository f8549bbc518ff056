// Package plan turns what check found into what is said and done: for
// every conflict, who can fix it and the exact fix (the configuration.nix
// or home.nix line, the command), and for resolve, the yields to ask for.
// check and resolve share it, so they never disagree. The root side's
// decisions (what to claim, stop and start, in which order) are here too,
// in root.go. It is pure: it reads nothing and changes nothing.
package plan

import (
	"fmt"
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

// Count counts the items each Who can fix.
func (p Plan) Count() map[Who]int {
	n := map[Who]int{}
	for _, it := range p.Items {
		n[it.Remedy.Who]++
	}
	return n
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

// reader is how a remedy names the user it is for: "you" and "your" when
// they read it themselves, their name when root does.
type reader struct{ you, your string }

func readerOf(in Input) reader {
	if in.Root {
		return reader{in.User, in.User + "'s"}
	}
	return reader{"you", "your"}
}

// asRoot is a command root runs: with sudo for a user who reads it.
func asRoot(in Input, cmd string) string {
	if in.Root {
		return cmd
	}
	return "sudo " + cmd
}

// rootDoes is what to do as root: said so to a user, not to root.
func rootDoes(in Input, do string) string {
	if in.Root {
		return do
	}
	return do + ", as root"
}

func remedy(in Input, f conflict.Finding) Remedy {
	port := f.Want.PortProto()
	rd := readerOf(in)
	switch f.Kind {
	case conflict.Resolvable, conflict.Latent:
		switch in.Manifest.Strategy {
		case manifest.DisableUser:
			return userOff(in, f)
		case manifest.Report:
			return reportOnly(in, f)
		}
		return yieldRemedy(in, f)
	case conflict.SystemOther:
		r := Remedy{Who: ByRoot, Says: fmt.Sprintf("%s does not name %s, so portclaim leaves it alone", f.Service, f.Unit),
			Ways: []Way{{Do: rootDoes(in, "stop it until the next boot"), Lines: []string{asRoot(in, "systemctl stop "+f.Unit)}}}}
		if off := nixosOff(f.Unit); off != "" {
			r.Ways = append(r.Ways, Way{Do: "or turn it off for good", In: InNixOS, Lines: []string{off}})
		}
		return r
	case conflict.OtherUser:
		other := strings.TrimPrefix(f.Manager, "user ")
		return Remedy{Who: ByOtherUser, Says: fmt.Sprintf("it is %s's %s: ask %s to stop it", other, f.Unit, other)}
	case conflict.UserOther:
		cmd := "systemctl --user stop " + f.Unit
		if in.Root {
			cmd = fmt.Sprintf("systemctl --user -M %s@ stop %s", in.User, f.Unit)
		}
		return Remedy{Who: ByYou, Says: fmt.Sprintf("it is %s own unit", rd.your),
			Ways: []Way{{Do: "stop it", Lines: []string{cmd}}}}
	case conflict.NoUnit:
		r := Remedy{Who: ByRoot, Says: fmt.Sprintf("pid %d (%s) holds %s outside any service unit", f.Holder.PID, f.Holder.Command, port)}
		if f.Holder.PID > 0 {
			r.Ways = []Way{{Do: rootDoes(in, "stop that process"), Lines: []string{asRoot(in, fmt.Sprintf("kill %d", f.Holder.PID))}}}
		}
		return r
	default: // Unknown
		return Remedy{Who: ByRoot, Says: fmt.Sprintf("what %s may read does not say which process of uid %d holds %s", rd.you, f.Holder.UID, port),
			Ways: []Way{{Do: rootDoes(in, "name it"), Lines: []string{asRoot(in, "portclaim who "+port)}}}}
	}
}

// yieldRemedy is the remedy for a named system unit in the way: resolve
// makes it yield when it may, now; else the administrator or root can.
func yieldRemedy(in Input, f conflict.Finding) Remedy {
	group := Group(in.System, f.SystemUnit)
	what := strings.Join(group, " and ")
	rootCmd := asRoot(in, "portclaim resolve --user "+in.User)
	if in.Root {
		says := fmt.Sprintf("root may make %s yield to %s", what, in.User)
		if f.Kind == conflict.Latent {
			says = atBoot(in, f, what) + "; root may keep it down for " + in.User
		}
		if in.Declined {
			return Remedy{Who: ByRoot, Says: says + ", when asked: there was no terminal to ask on",
				Ways: []Way{{Do: "act without asking", Lines: []string{rootCmd + " --yes"}}}}
		}
		return Remedy{Who: ByResolve, Says: says, Ways: []Way{{Lines: []string{rootCmd}}}}
	}
	missing := notAllowed(in, group)
	switch {
	case len(missing) == 0 && in.Broker == host.BrokerListening:
		says := fmt.Sprintf("the system policy lets %s yield to you", what)
		if f.Kind == conflict.Latent {
			says = atBoot(in, f, what) + "; the system policy lets it yield to you"
		}
		if in.Declined {
			return Remedy{Who: ByYou, Says: says + "; autoResolve is off and there was no terminal to ask on",
				Ways: []Way{{Do: "act without asking", Lines: []string{"portclaim resolve --yes"}},
					{Do: "or let portclaim act on every switch", In: InHome, Lines: []string{"services.portclaim.autoResolve = true;"}}}}
		}
		return Remedy{Who: ByResolve, Says: says, Ways: []Way{{Lines: []string{"portclaim resolve"}}}}
	case len(missing) == 0 && in.Broker == host.BrokerStopped:
		return Remedy{Who: ByAdmin,
			Says: fmt.Sprintf("the system policy lets %s yield to you, but nothing listens at %s: portclaim.socket is stopped", what, in.BrokerSocket),
			Ways: []Way{{Do: "see why", Lines: []string{"systemctl status portclaim.socket"}},
				{Do: "and start it again, as root", Lines: []string{"sudo systemctl start portclaim.socket"}},
				{Do: "or as root, now", Lines: []string{rootCmd}}}}
	case len(missing) == 0:
		return Remedy{Who: ByAdmin,
			Says: fmt.Sprintf("the system policy lets %s yield to you, but portclaim's broker is not there (no %s)", what, in.BrokerSocket),
			Ways: []Way{{Do: "enable portclaim's NixOS module", In: InNixOS, Lines: []string{"services.portclaim.enable = true;"}},
				{Do: "or as root, now", Lines: []string{rootCmd}}}}
	}
	r := Remedy{Who: ByAdmin}
	r.Says, r.Ways = letYield(in, f, missing)
	r.Ways = append(r.Ways, Way{Do: "or as root, now", Lines: []string{rootCmd}})
	return r
}

// reportOnly is strategy report's remedy: portclaim changes nothing, and
// resolve asks for no yield (as root neither), so the way out is the
// user's strategy; where the system side does not let the unit yield
// yet, the administrator's lines come with it.
func reportOnly(in Input, f conflict.Finding) Remedy {
	group := Group(in.System, f.SystemUnit)
	what := strings.Join(group, " and ")
	r := Remedy{Who: ByYou, Says: "strategy report: portclaim changes nothing",
		Ways: []Way{{Do: "let `portclaim resolve` make " + what + " yield", In: InHome, Lines: []string{`services.portclaim.strategy = "disable-system";`}}}}
	if in.Root {
		return r // root's authority needs no policy
	}
	if missing := notAllowed(in, group); len(missing) > 0 {
		_, ways := letYield(in, f, missing)
		ways[0].Do = "and " + ways[0].Do
		r.Ways = append(r.Ways, ways...)
	} else if in.Broker == host.BrokerMissing {
		r.Ways = append(r.Ways, Way{Do: "and enable portclaim's NixOS module", In: InNixOS, Lines: []string{"services.portclaim.enable = true;"}})
	}
	return r
}

// atBoot says why a stopped unit is in the way.
func atBoot(in Input, f conflict.Finding, what string) string {
	return fmt.Sprintf("%s is stopped but enabled, so it takes %s at boot, before %s user units start", what, f.Want.PortProto(), readerOf(in).your)
}

// notAllowed lists the units of group the policy does not let yield to
// the user.
func notAllowed(in Input, group []string) []string {
	var missing []string
	for _, u := range group {
		if in.Policy == nil || !in.Policy.Allows(in.User, u) {
			missing = append(missing, u)
		}
	}
	return missing
}

// letYield is the administrator's part where the policy does not let
// missing yield: why, and the configuration.nix ways.
func letYield(in Input, f conflict.Finding, missing []string) (string, []Way) {
	var says string
	yield := Way{Do: "let it yield", In: InNixOS}
	if in.Policy == nil {
		says = in.PolicyProblem
		yield.Do = "enable portclaim and let it yield"
		yield.Lines = []string{"services.portclaim.enable = true;"}
	} else {
		says = fmt.Sprintf("the system policy does not let %s yield to you", strings.Join(missing, " and "))
	}
	if f.Kind == conflict.Latent {
		says = atBoot(in, f, strings.Join(Group(in.System, f.SystemUnit), " and ")) + "; " + says
	}
	yield.Lines = append(yield.Lines, in.Policy.YieldLine(in.User, missing...))
	ways := []Way{yield}
	if off := nixosOff(f.SystemUnit); off != "" {
		ways = append(ways, Way{Do: "or turn the system service off for good", In: InNixOS, Lines: []string{off}})
	}
	return says, ways
}

// nixosOff is the configuration.nix line that turns a system unit off,
// only where the known-services table knows the NixOS module that runs
// it: a name guessed from the unit could name an option that does not
// exist.
func nixosOff(unit string) string {
	k, ok := manifest.KnownFor(unit)
	if !ok || k.NixOSModule == "" {
		return ""
	}
	return k.NixOSModule + ".enable = false;"
}

// userOff is strategy disable-user's remedy: the system service keeps the
// port; the user's own service goes, where home.nix declares it. A unit
// a generator writes (podman's quadlet does, from home.nix) cannot be
// disabled with systemctl: systemd refuses; only home.nix turns it off.
func userOff(in Input, f conflict.Finding) Remedy {
	svc := serviceOf(in.Manifest, f.Service)
	rd := readerOf(in)
	r := Remedy{Who: ByYou, Says: fmt.Sprintf("strategy disable-user: the system's %s keeps %s", f.SystemUnit, f.Want.PortProto())}
	switch {
	case svc.Origin.Podman != nil:
		r.Ways = []Way{{Do: fmt.Sprintf("turn %s %s off: remove services.podman.containers.%s", rd.your, f.UserUnit, nixAttr(svc.Origin.Podman.Container)), In: InHome}}
	case svc.Origin.HomeManager != "":
		r.Ways = []Way{{Do: fmt.Sprintf("turn %s %s off", rd.your, f.UserUnit), In: InHome, Lines: []string{svc.Origin.HomeManager + ".enable = false;"}}}
	default:
		r.Ways = []Way{{Do: fmt.Sprintf("turn %s %s off where it is declared", rd.your, f.UserUnit), In: InHome}}
		u, known := in.UserUnits[f.UserUnit]
		switch {
		case known && u.UnitFileState == "generated":
			r.Ways[0].Do += " (a generator writes it; systemctl cannot disable it)"
		case known && u.UnitFileState != "" && !in.Root:
			r.Ways = append(r.Ways, Way{Do: "or, if it is not from home.nix", Lines: []string{"systemctl --user disable --now " + f.UserUnit}})
		}
	}
	return r
}

// flatten fills the per-kind lines programs read from the ways.
func (r *Remedy) flatten() {
	r.NixOS, r.Home, r.Commands = nil, nil, nil
	for _, w := range r.Ways {
		switch w.In {
		case InNixOS:
			r.NixOS = append(r.NixOS, w.Lines...)
		case InHome:
			if w.Lines == nil || w.Lines[0] != r.MoveLine {
				r.Home = append(r.Home, w.Lines...)
			}
		default:
			r.Commands = append(r.Commands, w.Lines...)
		}
	}
}

// moveAway adds the other way out where resolve does not act: a free
// port nearby, and the home.nix line that moves the user unit there where
// the manifest says which option declares it. A service with several
// ports in the way gets one move that frees them all: each of its
// conflicts names the same complete new list.
func moveAway(in Input, items []Item) {
	var services []string
	byService := map[string][]int{}
	for i, it := range items {
		f := it.Finding
		if it.Remedy.Who == ByResolve || f.Kind == conflict.Latent && in.Manifest.Strategy == manifest.DisableUser {
			continue
		}
		if _, ok := byService[f.Service]; !ok {
			services = append(services, f.Service)
		}
		byService[f.Service] = append(byService[f.Service], i)
	}
	if len(services) == 0 {
		return
	}
	taken := newTaken(in.Sockets, in.Manifest)
	for _, name := range services {
		var wants []endpoint.Endpoint
		to := map[endpoint.Endpoint]uint16{}
		for _, i := range byService[name] {
			want := items[i].Finding.Want
			if _, done := to[want]; done {
				continue // held on two addresses: one move
			}
			if q := taken.freeNear(want); q != 0 {
				to[want] = q
				wants = append(wants, want)
				moved := want
				moved.Port = q
				taken.add(moved) // the next port of the service must not pick it too
			}
		}
		if len(wants) == 0 {
			continue
		}
		svc := serviceOf(in.Manifest, name)
		line := moveLine(svc, wants, to)
		var from, onto []string
		for _, w := range wants {
			from = append(from, w.PortProto())
			onto = append(onto, fmt.Sprint(to[w]))
		}
		// "it" is the user unit, which the conflict names just before.
		do := fmt.Sprintf("or move it to port %s, which is free", onto[0])
		if len(wants) > 1 {
			do = fmt.Sprintf("or move it from %s to %s, which are free", andList(from), andList(onto))
		}
		way := Way{Do: do}
		if line != "" {
			way.In, way.Lines = InHome, []string{line}
		}
		for _, i := range byService[name] {
			r := &items[i].Remedy
			r.MovePort, r.MoveLine = to[items[i].Finding.Want], line
			r.Ways = append(r.Ways, way)
		}
	}
}

// moveLine is the home.nix line that moves every port of wants to its
// port in to, where the manifest says which option declares the unit.
func moveLine(svc manifest.Service, wants []endpoint.Endpoint, to map[endpoint.Endpoint]uint16) string {
	switch {
	case svc.Origin.Podman != nil:
		specs := svc.Origin.Podman.Ports
		for _, w := range wants {
			var ok bool
			if specs, ok = manifest.MovePodmanPort(specs, w, to[w]); !ok {
				return ""
			}
		}
		return fmt.Sprintf("services.podman.containers.%s.ports = [ %s ];", nixAttr(svc.Origin.Podman.Container), quoteAll(specs))
	case svc.Origin.HomeManager != "" && len(wants) == 1:
		return fmt.Sprintf("%s.port = %d;", svc.Origin.HomeManager, to[wants[0]])
	}
	return ""
}

// andList joins "a", "a and b", "a, b and c".
func andList(ss []string) string {
	if len(ss) < 2 {
		return strings.Join(ss, "")
	}
	return strings.Join(ss[:len(ss)-1], ", ") + " and " + ss[len(ss)-1]
}

// nixAttr writes a name as a Nix attribute: bare where Nix allows it.
func nixAttr(name string) string {
	for i, c := range name {
		ok := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '\'')
		if !ok {
			return fmt.Sprintf("%q", name)
		}
	}
	return name
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, " ")
}

// taken indexes, by protocol and port, the sockets read and the ports
// the manifest claims: a free port nearby is then found in a few lookups
// per candidate, whatever the number of sockets and claims (500
// conflicts once cost 100 ms of scans). A bitset answers "nothing on this
// port" without a map lookup, the common case.
type taken struct {
	busy [2][65536 / 64]uint64
	at   map[uint32][]endpoint.Endpoint
}

func takenKey(proto endpoint.Proto, port uint16) (int, uint32) {
	i := 0
	if proto == endpoint.UDP {
		i = 1
	}
	return i, uint32(i)<<16 | uint32(port)
}

func newTaken(socks []host.Socket, m manifest.Manifest) *taken {
	t := &taken{at: map[uint32][]endpoint.Endpoint{}}
	for _, s := range socks {
		t.add(s.Endpoint)
	}
	for _, svc := range m.Services {
		for _, e := range svc.Ports {
			t.add(e)
		}
	}
	return t
}

func (t *taken) add(e endpoint.Endpoint) {
	i, k := takenKey(e.Proto, e.Port)
	t.busy[i][e.Port/64] |= 1 << (e.Port % 64)
	t.at[k] = append(t.at[k], e)
}

// freeNear finds the free port nearest to want.Port on want's address
// (alternating above and below, staying at or above 1024 and away from
// every other claimed port), or 0 when none is within the margin the
// sockets were read in.
func (t *taken) freeNear(want endpoint.Endpoint) uint16 {
	free := func(p int) bool {
		if p < 1024 || p > 65535 {
			return false
		}
		i, k := takenKey(want.Proto, uint16(p))
		if t.busy[i][p/64]&(1<<(p%64)) == 0 {
			return true
		}
		cand := want
		cand.Port = uint16(p)
		for _, e := range t.at[k] {
			if endpoint.Overlap(cand, e) {
				return false
			}
		}
		return true
	}
	for d := 1; d <= host.NearbyPorts; d++ {
		if p := int(want.Port) + d; free(p) {
			return uint16(p)
		}
		if p := int(want.Port) - d; free(p) {
			return uint16(p)
		}
	}
	return 0
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
