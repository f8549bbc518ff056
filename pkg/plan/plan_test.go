package plan

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/portclaim/portclaim/pkg/conflict"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/holder"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/manifest"
	"github.com/portclaim/portclaim/pkg/policy"
)

func tcp(port uint16) endpoint.Endpoint { return endpoint.Endpoint{Proto: endpoint.TCP, Port: port} }

// world is alice's manifest: a podman-derived ollama claim, a
// home-manager-derived one, and one declared by hand.
func world() manifest.Manifest {
	return manifest.Manifest{Version: 2, Strategy: manifest.DisableSystem, AutoResolve: true, Services: []manifest.Service{
		{Name: "ollama", SystemUnits: []string{"ollama.service"}, UserUnits: []string{"podman-local-ai-ollama.service"},
			Ports:  []endpoint.Endpoint{tcp(11434)},
			Origin: manifest.Origin{Podman: &manifest.PodmanOrigin{Container: "local-ai-ollama", Ports: []string{"8080:80", "11434:11434"}}}},
		{Name: "searx", SystemUnits: []string{"searx.service"}, UserUnits: []string{"podman-searx.service"}, Ports: []endpoint.Endpoint{tcp(8888)}},
		{Name: "node", SystemUnits: []string{"prometheus-node-exporter.service"}, UserUnits: []string{"exporter.service"}, Ports: []endpoint.Endpoint{tcp(9100)},
			Origin: manifest.Origin{HomeManager: "services.exporter"}},
		{Name: "mindsdb", SystemUnits: []string{"mindsdb.service"}, UserUnits: []string{"podman-mindsdb.service"}, Ports: []endpoint.Endpoint{tcp(47334)}},
	}}
}

func finding(service string, port uint16, kind conflict.Kind, unit string) conflict.Finding {
	f := conflict.Finding{Service: service, Want: tcp(port), Kind: kind, Unit: unit, Manager: "system"}
	for _, s := range world().Services {
		if s.Name == service {
			f.UserUnit = s.UserUnits[0]
		}
	}
	if kind == conflict.Resolvable || kind == conflict.Latent {
		f.SystemUnit = unit
	}
	return f
}

func input(fs ...conflict.Finding) Input {
	pol := &policy.Policy{Path: policy.Path, ClaimsDir: policy.DefaultClaimsDir, Yield: map[string][]string{
		"ollama.service": {"alice"}, "searx.service": {"bob"}}}
	return Input{Manifest: world(), Findings: fs, User: "alice", Policy: pol, Broker: host.BrokerListening, BrokerSocket: policy.BrokerSocket,
		System: map[string]host.Unit{"ollama.service": {Name: "ollama.service", ActiveState: "active"}}}
}

func TestWhoCanFixEachConflict(t *testing.T) {
	in := input(
		finding("ollama", 11434, conflict.Resolvable, "ollama.service"),
		finding("searx", 8888, conflict.Resolvable, "searx.service"),
		finding("mindsdb", 47334, conflict.Latent, "mindsdb.service"),
		finding("node", 9100, conflict.SystemOther, "sshd.service"),
	)
	p := Make(in)
	want := []struct {
		who  Who
		says []string
	}{
		{ByResolve, []string{"the system policy lets ollama.service yield to you; portclaim resolve"}},
		{ByAdmin, []string{`services.portclaim.yield."searx.service".users = [ "alice" "bob" ];`, "sudo portclaim resolve --user alice"}},
		{ByAdmin, []string{"mindsdb.service is stopped but enabled, so it takes 47334/tcp at boot", `services.portclaim.yield."mindsdb.service".users = [ "alice" ];`}},
		{ByRoot, []string{"node does not name sshd.service, so portclaim leaves it alone", "sudo systemctl stop sshd.service"}},
	}
	for i, w := range want {
		r := p.Items[i].Remedy
		if r.Who != w.who {
			t.Errorf("item %d: who %s, want %s (%s)", i, r.Who, w.who, r.Text())
		}
		for _, s := range w.says {
			if !strings.Contains(all(r), s) {
				t.Errorf("item %d: %q lacks %q", i, all(r), s)
			}
		}
	}
	// Only options known to exist: searx and sshd have no known NixOS
	// module, mindsdb's table entry has none.
	for _, it := range p.Items {
		for _, l := range it.Remedy.NixOS {
			if strings.Contains(l, ".enable = false") {
				t.Errorf("%s: guessed an option: %s", it.Finding.Service, l)
			}
		}
	}
	if len(p.Yields) != 1 || p.Yields[0].Units[0] != "ollama.service" || p.Yields[0].Ports[0].Port != 11434 {
		t.Errorf("yields %+v", p.Yields)
	}
}

// all is every word of a remedy, its ways one after the other.
func all(r Remedy) string {
	s := r.Says
	for _, w := range r.Ways {
		s += "; " + w.Text()
	}
	return s
}

func TestKnownServiceNamesItsNixOSModule(t *testing.T) {
	in := input(finding("ollama", 11434, conflict.Resolvable, "ollama.service"))
	in.Policy = nil
	in.PolicyProblem = "no portclaim policy is installed (/etc/portclaim/policy.json does not exist)"
	r := Make(in).Items[0].Remedy
	want := []Way{
		{Do: "enable portclaim and let it yield", In: InNixOS, Lines: []string{"services.portclaim.enable = true;", `services.portclaim.yield."ollama.service".users = [ "alice" ];`}},
		{Do: "or turn the system service off for good", In: InNixOS, Lines: []string{"services.ollama.enable = false;"}},
		{Do: "or as root, now", Lines: []string{"sudo portclaim resolve --user alice"}},
	}
	if r.Who != ByAdmin || r.Says != in.PolicyProblem || !reflect.DeepEqual(r.Ways[:3], want) {
		t.Errorf("%s\n%#v", r.Text(), r.Ways)
	}
}

func TestPolicyAllowsButNoBroker(t *testing.T) {
	in := input(finding("ollama", 11434, conflict.Resolvable, "ollama.service"))
	in.Broker = host.BrokerMissing
	p := Make(in)
	r := p.Items[0].Remedy
	if r.Who != ByAdmin || !strings.Contains(r.Says, "broker is not there") || r.Commands[0] != "sudo portclaim resolve --user alice" || len(p.Yields) != 0 {
		t.Errorf("%s, yields %v", r.Text(), p.Yields)
	}
	// An entry the policy has is never suggested again.
	if strings.Contains(all(r), "yield.\"ollama.service\"") {
		t.Errorf("suggests the entry the policy already has: %s", all(r))
	}
}

// TestBrokerStoppedIsNotResolvable: a socket file nobody listens on
// (portclaim.socket stopped) is not a broker resolve can ask: the
// conflict is the administrator's, whose first step is to see why, and
// root's command names the user.
func TestBrokerStoppedIsNotResolvable(t *testing.T) {
	in := input(finding("ollama", 11434, conflict.Resolvable, "ollama.service"))
	in.Broker = host.BrokerStopped
	p := Make(in)
	r := p.Items[0].Remedy
	want := []string{"systemctl status portclaim.socket", "sudo systemctl start portclaim.socket", "sudo portclaim resolve --user alice"}
	if r.Who != ByAdmin || len(p.Yields) != 0 || !reflect.DeepEqual(r.Commands, want) || strings.Contains(all(r), "NAME") {
		t.Errorf("%s; commands %q, yields %v", all(r), r.Commands, p.Yields)
	}
}

// TestDeclinedNamesTheCommandThatActs: a resolve that may not act for want
// of a terminal (root for a user without --yes, autoResolve off) names
// the command that does, with --yes, not itself; and it asks for nothing.
func TestDeclinedNamesTheCommandThatActs(t *testing.T) {
	in := input(finding("ollama", 11434, conflict.Resolvable, "ollama.service"))
	in.Declined = true
	p := Make(in)
	if r := p.Items[0].Remedy; r.Who != ByYou || r.Commands[0] != "portclaim resolve --yes" || len(p.Yields) != 0 ||
		!reflect.DeepEqual(r.Home, []string{"services.portclaim.autoResolve = true;"}) {
		t.Errorf("alice: %s, yields %v", all(r), p.Yields)
	}
	in.Root = true
	p = Make(in)
	if r := p.Items[0].Remedy; r.Who != ByRoot || !reflect.DeepEqual(r.Commands, []string{"portclaim resolve --user alice --yes"}) || len(p.Yields) != 0 {
		t.Errorf("root: %s, yields %v", all(r), p.Yields)
	}
}

func TestRootMayYieldWhatTheManifestNames(t *testing.T) {
	in := input(finding("searx", 8888, conflict.Resolvable, "searx.service"))
	in.Root = true
	p := Make(in)
	if p.Items[0].Remedy.Who != ByResolve || len(p.Yields) != 1 {
		t.Errorf("%+v", p)
	}
	// Root reads it: the unit yields to alice, not to "you"; root needs
	// no sudo.
	if r := p.Items[0].Remedy; r.Says != "root may make searx.service yield to alice" || !reflect.DeepEqual(r.Commands, []string{"portclaim resolve --user alice"}) {
		t.Errorf("%q %q", r.Says, r.Commands)
	}
}

func TestMovesNameOnlyOptionsThatExist(t *testing.T) {
	sock := func(addr string, port uint16) host.Socket {
		return host.Socket{Endpoint: endpoint.Endpoint{Proto: endpoint.TCP, Addr: netip.MustParseAddr(addr), Port: port}}
	}
	in := input(
		finding("ollama", 11434, conflict.OtherUser, "podman-x.service"),
		finding("node", 9100, conflict.UserOther, "dev.service"),
		finding("searx", 8888, conflict.NoUnit, ""),
	)
	in.Findings[0].Manager = "user bob"
	in.Sockets = []host.Socket{sock("0.0.0.0", 11435), sock("127.0.0.1", 8889)}
	p := Make(in)
	if got := p.Items[0].Remedy; got.MovePort != 11433 || got.MoveLine != `services.podman.containers.local-ai-ollama.ports = [ "8080:80" "11433:11434" ];` {
		t.Errorf("podman move: %d %q", got.MovePort, got.MoveLine)
	}
	if got := p.Items[1].Remedy; got.MoveLine != "services.exporter.port = 9101;" {
		t.Errorf("home-manager move: %q", got.MoveLine)
	}
	if got := p.Items[2].Remedy; got.MovePort != 8887 || got.MoveLine != "" || !strings.Contains(all(got), "or move it to port 8887, which is free") {
		t.Errorf("declared by hand: %+v", got)
	}
	if got := p.Items[0].Remedy; got.Who != ByOtherUser || got.Says != "it is bob's podman-x.service: ask bob to stop it" {
		t.Errorf("%+v", got)
	}
}

// TestOneMoveFreesEveryPortOfAService: a container with two ports in the
// way gets one move, the same complete list on both conflicts, freeing
// both (each list once undid the other's move).
func TestOneMoveFreesEveryPortOfAService(t *testing.T) {
	m := world()
	m.Services = append(m.Services, manifest.Service{Name: "qdrant", SystemUnits: []string{"qdrant.service"}, UserUnits: []string{"podman-local-ai-qdrant.service"},
		Ports:  []endpoint.Endpoint{tcp(6333), tcp(6334)},
		Origin: manifest.Origin{Podman: &manifest.PodmanOrigin{Container: "local-ai-qdrant", Ports: []string{"6333:6333", "6334:6334"}}}})
	f1 := conflict.Finding{Service: "qdrant", Want: tcp(6333), Kind: conflict.Resolvable, Unit: "qdrant.service", SystemUnit: "qdrant.service", UserUnit: "podman-local-ai-qdrant.service", Manager: "system"}
	f2 := f1
	f2.Want = tcp(6334)
	in := input(f1, f2)
	in.Manifest = m
	in.Sockets = []host.Socket{{Endpoint: tcp(6333)}, {Endpoint: tcp(6334)}}
	p := Make(in)
	const line = `services.podman.containers.local-ai-qdrant.ports = [ "6332:6333" "6335:6334" ];`
	for i, it := range p.Items {
		r := it.Remedy
		if r.MoveLine != line || !strings.Contains(all(r), "or move it from 6333/tcp and 6334/tcp to 6332 and 6335, which are free") {
			t.Errorf("item %d: %q\n%s", i, r.MoveLine, all(r))
		}
	}
	if p.Items[0].Remedy.MovePort != 6332 || p.Items[1].Remedy.MovePort != 6335 {
		t.Errorf("move ports %d %d", p.Items[0].Remedy.MovePort, p.Items[1].Remedy.MovePort)
	}
}

func TestStrategies(t *testing.T) {
	in := input(finding("ollama", 11434, conflict.Resolvable, "ollama.service"))
	in.Manifest.Strategy = manifest.DisableUser
	p := Make(in)
	if r := p.Items[0].Remedy; r.Who != ByYou || !strings.Contains(all(r), "remove services.podman.containers.local-ai-ollama, in home.nix") || len(p.Yields) != 0 {
		t.Errorf("disable-user: %s, yields %v", all(r), p.Yields)
	}
}

// TestDisableUserNamesNoCommandAGeneratorDefeats: systemd refuses to
// disable a unit a generator writes (podman's quadlet, from home.nix):
// for such a unit declared by hand the remedy is home.nix alone; a unit
// from a unit file may also be disabled with systemctl.
func TestDisableUserNamesNoCommandAGeneratorDefeats(t *testing.T) {
	in := input(finding("searx", 8888, conflict.Resolvable, "searx.service"))
	in.Manifest.Strategy = manifest.DisableUser
	for _, c := range []struct {
		state   string
		command bool
	}{{"generated", false}, {"", false}, {"enabled", true}} {
		in.UserUnits = map[string]host.Unit{"podman-searx.service": {Name: "podman-searx.service", LoadState: "loaded", UnitFileState: c.state}}
		r := Make(in).Items[0].Remedy
		if got := len(r.Commands) > 0; got != c.command || r.Ways[0].In != InHome {
			t.Errorf("unit file state %q: commands %q, first way %+v", c.state, r.Commands, r.Ways[0])
		}
		if c.state == "generated" && !strings.Contains(r.Ways[0].Do, "systemctl cannot disable it") {
			t.Errorf("a generated unit: %+v", r.Ways[0])
		}
	}
}

// TestStrategyReportAsksNoResolve: under strategy report resolve acts on
// nothing (as root neither), so the remedy is the user's strategy line,
// never a resolve command; the administrator's lines come with it where
// the system side does not let the unit yield yet.
func TestStrategyReportAsksNoResolve(t *testing.T) {
	strategy := Way{Do: "let `portclaim resolve` make ollama.service yield", In: InHome, Lines: []string{`services.portclaim.strategy = "disable-system";`}}
	const moveLine = `services.podman.containers.local-ai-ollama.ports = [ "8080:80" "11435:11434" ];`
	move := Way{Do: "or move it to port 11435, which is free", In: InHome, Lines: []string{moveLine}}
	report := func(in Input) Input {
		in.Manifest.Strategy = manifest.Report
		return in
	}
	noPolicy := report(input(finding("ollama", 11434, conflict.Resolvable, "ollama.service")))
	noPolicy.Policy, noPolicy.PolicyProblem = nil, "no portclaim policy is installed"
	noBroker := report(input(finding("ollama", 11434, conflict.Resolvable, "ollama.service")))
	noBroker.Broker = host.BrokerMissing
	asRoot := report(input(finding("ollama", 11434, conflict.Resolvable, "ollama.service")))
	asRoot.Policy, asRoot.Root = nil, true
	cases := []struct {
		name string
		in   Input
		ways []Way
	}{
		{"allowed, broker there", report(input(finding("ollama", 11434, conflict.Resolvable, "ollama.service"))), []Way{strategy, move}},
		{"no policy", noPolicy, []Way{strategy,
			{Do: "and enable portclaim and let it yield", In: InNixOS, Lines: []string{"services.portclaim.enable = true;", `services.portclaim.yield."ollama.service".users = [ "alice" ];`}},
			{Do: "or turn the system service off for good", In: InNixOS, Lines: []string{"services.ollama.enable = false;"}}, move}},
		{"no broker", noBroker, []Way{strategy, {Do: "and enable portclaim's NixOS module", In: InNixOS, Lines: []string{"services.portclaim.enable = true;"}}, move}},
		{"root for alice", asRoot, []Way{strategy, move}},
	}
	for _, c := range cases {
		p := Make(c.in)
		got := p.Items[0].Remedy
		if got.Who != ByYou || got.Says != "strategy report: portclaim changes nothing" || !reflect.DeepEqual(got.Ways, c.ways) || len(p.Yields) != 0 ||
			len(got.Commands) != 0 || got.MoveLine != moveLine || got.MovePort != 11435 {
			t.Errorf("%s:\n got %#v\nwant ways %#v\nyields %v", c.name, got, c.ways, p.Yields)
		}
	}
}

func TestSocketActivatedServiceYieldsWithItsSocketFirst(t *testing.T) {
	in := input(finding("ollama", 11434, conflict.Resolvable, "ollama.service"))
	in.Findings[0].Unit = "ollama.socket"
	in.Policy.Yield["ollama.socket"] = []string{"alice"}
	in.System["ollama.service"] = host.Unit{Name: "ollama.service", TriggeredBy: []string{"ollama.socket"}}
	p := Make(in)
	if len(p.Yields) != 1 || strings.Join(p.Yields[0].Units, " ") != "ollama.socket ollama.service" {
		t.Errorf("%+v", p.Yields)
	}
	delete(in.Policy.Yield, "ollama.socket")
	r := Make(in).Items[0].Remedy
	if r.Who != ByAdmin || !strings.Contains(all(r), `yield."ollama.socket".users = [ "alice" ];`) || strings.Contains(all(r), `yield."ollama.service"`) {
		t.Errorf("the socket missing from the policy: %s", all(r))
	}
}

func TestUnknownHolderSaysHowToFindIt(t *testing.T) {
	f := finding("searx", 8888, conflict.Unknown, "")
	f.Holder = holder.Holder{UID: 0, Confidence: holder.Unknown, Why: "socket owned by uid 0"}
	r := Make(input(f)).Items[0].Remedy
	if r.Who != ByRoot || r.Commands[0] != "sudo portclaim who 8888/tcp" {
		t.Errorf("%s", r.Text())
	}
}

func TestFreeNearKeepsToUnprivilegedPortsAndItsProtocol(t *testing.T) {
	tcp := func(port uint16) endpoint.Endpoint { return endpoint.Endpoint{Proto: endpoint.TCP, Port: port} }
	udp := func(port uint16) endpoint.Endpoint { return endpoint.Endpoint{Proto: endpoint.UDP, Port: port} }
	socks := func(es ...endpoint.Endpoint) []host.Socket {
		var s []host.Socket
		for _, e := range es {
			s = append(s, host.Socket{Endpoint: e})
		}
		return s
	}
	cases := []struct {
		name  string
		socks []host.Socket
		want  endpoint.Endpoint
		free  uint16
	}{
		{"a udp socket leaves the tcp port free", socks(udp(8081)), tcp(8080), 8081},
		{"above first, then below", socks(tcp(8081)), tcp(8080), 8079},
		{"never below 1024", socks(tcp(1025)), tcp(1024), 1026},
		{"never above 65535", socks(tcp(65534)), tcp(65535), 65533},
		{"another address does not block", socks(endpoint.Endpoint{Proto: endpoint.TCP, Addr: netip.MustParseAddr("127.0.0.1"), Port: 8081}),
			endpoint.Endpoint{Proto: endpoint.TCP, Addr: netip.MustParseAddr("127.0.0.2"), Port: 8080}, 8081},
	}
	for _, c := range cases {
		if got := newTaken(c.socks, manifest.Manifest{}).freeNear(c.want); got != c.free {
			t.Errorf("%s: got %d, want %d", c.name, got, c.free)
		}
	}
	var all []host.Socket
	for p := 20000 - host.NearbyPorts; p <= 20000+host.NearbyPorts; p++ {
		all = append(all, host.Socket{Endpoint: tcp(uint16(p))})
	}
	if got := newTaken(all, manifest.Manifest{}).freeNear(tcp(20000)); got != 0 {
		t.Errorf("every port within the margin is taken, yet %d was offered", got)
	}
}

// TestNoBrokerNamesTheSocketLookedFor: the message names the socket
// portclaim looked for (--broker-socket), not always the default.
func TestNoBrokerNamesTheSocketLookedFor(t *testing.T) {
	in := input(finding("ollama", 11434, conflict.Resolvable, "ollama.service"))
	in.Broker, in.BrokerSocket = host.BrokerMissing, "/tmp/elsewhere.sock"
	if r := Make(in).Items[0].Remedy; r.Who != ByAdmin || !strings.Contains(r.Says, "(no /tmp/elsewhere.sock)") {
		t.Errorf("%s", r.Text())
	}
}
