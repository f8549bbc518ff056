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

// Who can fix a conflict.
type Who string

const (
	// ByResolve: `portclaim resolve` makes the unit yield (the policy lets
	// it yield to you and the broker is there, or you are root).
	ByResolve Who = "resolve"
	// ByAdmin: a change to configuration.nix (NixOS lines given).
	ByAdmin Who = "admin"
	// ByRoot: root, now (commands given).
	ByRoot Who = "root"
	// ByYou: your own units or home.nix.
	ByYou Who = "you"
	// ByOtherUser: the user whose unit holds the port.
	ByOtherUser Who = "other-user"
)

// Remedy is what to do about one conflict.
type Remedy struct {
	Who Who
	// Says what holds the port and what to do, in one or two sentences.
	Says     string
	NixOS    []string // lines for configuration.nix
	Home     []string // lines for home.nix
	Commands []string // commands to run
	// Move is the other way out: a free port nearby and, where the
	// manifest says where home-manager declares the unit, the home.nix
	// line that moves it there ("" when none is known).
	Move     string
	MoveLine string
	MovePort uint16
}

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
}

// Input is what Make plans from.
type Input struct {
	Manifest manifest.Manifest
	Findings []conflict.Finding
	User     string
	// Root: portclaim runs as root for User (`portclaim resolve --user
	// alice`): root may make any unit the manifest names yield.
	Root          bool
	Policy        *policy.Policy // nil when none is installed or trusted
	PolicyProblem string         // why Policy is nil
	Broker        bool           // the broker's socket is there
	BrokerSocket  string         // where it was looked for
	System        map[string]host.Unit
	Sockets       []host.Socket // on and around the claimed ports
}

// Make plans every conflict in in.Findings.
func Make(in Input) Plan {
	var p Plan
	taken := newTaken(in.Sockets, in.Manifest)
	yielding := map[string]bool{} // system units in p.Yields
	for _, f := range in.Findings {
		if !f.Kind.Conflict() {
			continue
		}
		r := remedy(in, f)
		if r.Who == ByResolve && in.Manifest.Strategy == manifest.DisableSystem {
			if !yielding[f.SystemUnit] {
				yielding[f.SystemUnit] = true
				p.Yields = append(p.Yields, Yield{Service: f.Service, Units: Group(in.System, f.SystemUnit), Ports: servicePorts(in.Manifest, f.Service)})
			}
		} else {
			moveAway(in, taken, f, &r)
		}
		p.Items = append(p.Items, Item{Finding: f, Remedy: r})
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

func remedy(in Input, f conflict.Finding) Remedy {
	port := f.Want.PortProto()
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
		r := Remedy{Who: ByRoot, Says: fmt.Sprintf("%s holds %s, and %s does not name it, so portclaim leaves it alone: as root, stop it (until the next boot)",
			f.Unit, port, f.Service), Commands: []string{"sudo systemctl stop " + f.Unit}}
		if off := nixosOff(f.Unit); off != "" {
			r.Says += ", or turn it off for good in configuration.nix"
			r.NixOS = []string{off}
		}
		return r
	case conflict.OtherUser:
		return Remedy{Who: ByOtherUser, Says: fmt.Sprintf("%s's %s holds %s: ask them to stop it", strings.TrimPrefix(f.Manager, "user "), f.Unit, port)}
	case conflict.UserOther:
		return Remedy{Who: ByYou, Says: fmt.Sprintf("your own %s holds %s: stop it", f.Unit, port),
			Commands: []string{"systemctl --user stop " + f.Unit}}
	case conflict.NoUnit:
		r := Remedy{Who: ByRoot, Says: fmt.Sprintf("pid %d (%s) holds %s outside any service unit: stop that process", f.Holder.PID, f.Holder.Command, port)}
		if f.Holder.PID > 0 {
			r.Commands = []string{fmt.Sprintf("sudo kill %d", f.Holder.PID)}
		}
		return r
	default: // Unknown
		return Remedy{Who: ByRoot, Says: fmt.Sprintf("a process of uid %d holds %s, and what you may read does not say which (%s): as root, name it", f.Holder.UID, port, f.Holder.Why),
			Commands: []string{"sudo portclaim who " + port}}
	}
}

// yieldRemedy is the remedy for a named system unit in the way: resolve
// makes it yield when it may; else the administrator or root can.
func yieldRemedy(in Input, f conflict.Finding) Remedy {
	group := Group(in.System, f.SystemUnit)
	what := strings.Join(group, " and ")
	to, whose := "you", "your"
	if in.Root {
		to, whose = in.User, in.User+"'s" // root reads it, for the user
	}
	doing := "makes " + what + " yield to " + to
	if f.Kind == conflict.Latent {
		doing = fmt.Sprintf("keeps %s down (it is stopped but enabled, so it would take %s at boot, before %s user units start)", what, f.Want.PortProto(), whose)
	}
	rootCmd := "sudo portclaim resolve --user " + in.User
	if in.Root {
		return Remedy{Who: ByResolve, Says: fmt.Sprintf("`portclaim resolve --user %s` %s", in.User, doing),
			Commands: []string{"portclaim resolve --user " + in.User}}
	}
	missing := notAllowed(in, group)
	switch {
	case len(missing) == 0 && in.Broker:
		return Remedy{Who: ByResolve, Says: "`portclaim resolve` " + doing + " (the system policy lets it)", Commands: []string{"portclaim resolve"}}
	case len(missing) == 0:
		return Remedy{Who: ByAdmin, Says: noBroker(in, what) + "; until then root can do it now",
			NixOS: []string{"services.portclaim.enable = true;"}, Commands: []string{rootCmd}}
	}
	r := Remedy{Who: ByAdmin}
	r.Says, r.NixOS = letYield(in, f, missing)
	and := " and "
	if f.Kind == conflict.Latent {
		and = ", and "
	}
	r.Says = holds(f, what) + and + r.Says + "; or as root, now"
	r.Commands = []string{rootCmd}
	return r
}

// reportOnly is strategy report's remedy: portclaim changes nothing, and
// resolve asks for no yield (as root neither), so the way out is the
// user's strategy; where the system side does not let the unit yield
// yet, the administrator's lines come with it.
func reportOnly(in Input, f conflict.Finding) Remedy {
	group := Group(in.System, f.SystemUnit)
	what := strings.Join(group, " and ")
	r := Remedy{Who: ByYou, Home: []string{`services.portclaim.strategy = "disable-system";`},
		Says: fmt.Sprintf("strategy report: portclaim changes nothing. %s; for `portclaim resolve` to make it yield, set the strategy in home.nix", holds(f, what))}
	if in.Root {
		return r // root's authority needs no policy
	}
	if missing := notAllowed(in, group); len(missing) > 0 {
		says, nixos := letYield(in, f, missing)
		r.Says += ", and " + says
		r.NixOS = nixos
	} else if !in.Broker {
		r.Says += ", and " + noBroker(in, what)
		r.NixOS = []string{"services.portclaim.enable = true;"}
	}
	return r
}

// holds says what holds the port, or for latent, takes it at boot.
func holds(f conflict.Finding, what string) string {
	if f.Kind == conflict.Latent {
		return fmt.Sprintf("%s is stopped but enabled, so it takes %s at boot, before your user units start", what, f.Want.PortProto())
	}
	return fmt.Sprintf("%s holds %s", what, f.Want.PortProto())
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

// noBroker says the policy allows the yield but the broker is missing.
func noBroker(in Input, what string) string {
	return fmt.Sprintf("the system policy lets %s yield to you, but portclaim's broker is not there (no %s): enable portclaim's NixOS module in configuration.nix",
		what, in.BrokerSocket)
}

// letYield is the administrator's part where the policy does not let
// missing yield: what to do in configuration.nix, and its lines.
func letYield(in Input, f conflict.Finding, missing []string) (string, []string) {
	var says string
	var nixos []string
	if in.Policy == nil {
		says = fmt.Sprintf("no system policy lets it yield to you (%s): in configuration.nix, enable portclaim and let it yield", in.PolicyProblem)
		nixos = []string{"services.portclaim.enable = true;"}
	} else {
		says = fmt.Sprintf("the system policy does not let %s yield to you: in configuration.nix, let it yield", strings.Join(missing, " and "))
	}
	nixos = append(nixos, in.Policy.YieldLine(in.User, missing...))
	if off := nixosOff(f.SystemUnit); off != "" {
		says += ", or turn the system service off for good"
		nixos = append(nixos, off)
	}
	return says, nixos
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
// port; the user's own service goes.
func userOff(in Input, f conflict.Finding) Remedy {
	svc := serviceOf(in.Manifest, f.Service)
	r := Remedy{Who: ByYou, Says: fmt.Sprintf("strategy disable-user: the system's %s keeps %s; turn your %s off", f.SystemUnit, f.Want.PortProto(), f.UserUnit)}
	switch {
	case svc.Origin.Podman != nil:
		r.Says += fmt.Sprintf(": remove services.podman.containers.%s from home.nix", nixAttr(svc.Origin.Podman.Container))
	case svc.Origin.HomeManager != "":
		r.Home = []string{svc.Origin.HomeManager + ".enable = false;"}
	default:
		r.Says += " where your home.nix declares it"
		r.Commands = []string{"systemctl --user disable --now " + f.UserUnit}
	}
	return r
}

// moveAway adds the other way out: a free port nearby, and the home.nix
// line that moves the user unit there where the manifest says which
// option declares it.
func moveAway(in Input, taken *taken, f conflict.Finding, r *Remedy) {
	if f.Kind == conflict.Latent && in.Manifest.Strategy == manifest.DisableUser {
		return
	}
	q := taken.freeNear(f.Want)
	if q == 0 {
		return
	}
	r.MovePort = q
	svc := serviceOf(in.Manifest, f.Service)
	switch {
	case svc.Origin.Podman != nil:
		if specs, ok := manifest.MovePodmanPort(svc.Origin.Podman.Ports, f.Want, q); ok {
			r.MoveLine = fmt.Sprintf("services.podman.containers.%s.ports = [ %s ];", nixAttr(svc.Origin.Podman.Container), quoteAll(specs))
		}
	case svc.Origin.HomeManager != "":
		r.MoveLine = fmt.Sprintf("%s.port = %d;", svc.Origin.HomeManager, q)
	}
	r.Move = fmt.Sprintf("or move %s to port %d, which is free", f.UserUnit, q)
	if r.MoveLine != "" {
		r.Move += ", in home.nix"
	}
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
	add := func(e endpoint.Endpoint) {
		i, k := takenKey(e.Proto, e.Port)
		t.busy[i][e.Port/64] |= 1 << (e.Port % 64)
		t.at[k] = append(t.at[k], e)
	}
	for _, s := range socks {
		add(s.Endpoint)
	}
	for _, svc := range m.Services {
		for _, e := range svc.Ports {
			add(e)
		}
	}
	return t
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

// Text is a remedy in one line, as check and resolve print it.
func (r Remedy) Text() string {
	var b strings.Builder
	b.WriteString(r.Says)
	if len(r.NixOS) > 0 {
		fmt.Fprintf(&b, " — configuration.nix: %s", strings.Join(r.NixOS, " "))
	}
	if len(r.Home) > 0 {
		fmt.Fprintf(&b, " — home.nix: %s", strings.Join(r.Home, " "))
	}
	for _, c := range r.Commands {
		fmt.Fprintf(&b, " — `%s`", c)
	}
	if r.Move != "" {
		fmt.Fprintf(&b, "; %s", r.Move)
		if r.MoveLine != "" {
			fmt.Fprintf(&b, ": %s", r.MoveLine)
		}
	}
	return b.String()
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
