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
	return Input{Manifest: world(), Findings: fs, User: "alice", Policy: pol, Broker: true, BrokerSocket: policy.BrokerSocket,
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
		{ByResolve, []string{"`portclaim resolve` makes ollama.service yield to you"}},
		{ByAdmin, []string{`services.portclaim.yield."searx.service".users = [ "alice" "bob" ];`, "sudo portclaim resolve --user alice"}},
		{ByAdmin, []string{"mindsdb.service is stopped but enabled, so it takes 47334/tcp at boot", `services.portclaim.yield."mindsdb.service".users = [ "alice" ];`}},
		{ByRoot, []string{"sshd.service holds 9100/tcp, and node does not name it", "sudo systemctl stop sshd.service"}},
	}
	for i, w := range want {
		r := p.Items[i].Remedy
		if r.Who != w.who {
			t.Errorf("item %d: who %s, want %s (%s)", i, r.Who, w.who, r.Text())
		}
		for _, s := range w.says {
			if !strings.Contains(r.Text(), s) {
				t.Errorf("item %d: %q lacks %q", i, r.Text(), s)
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

func TestKnownServiceNamesItsNixOSModule(t *testing.T) {
	in := input(finding("ollama", 11434, conflict.Resolvable, "ollama.service"))
	in.Policy = nil
	in.PolicyProblem = "no portclaim policy is installed"
	r := Make(in).Items[0].Remedy
	if r.Who != ByAdmin || !strings.Contains(r.Text(), "services.portclaim.enable = true; services.portclaim.yield.\"ollama.service\".users = [ \"alice\" ]; services.ollama.enable = false;") {
		t.Errorf("%s", r.Text())
	}
}

func TestPolicyAllowsButNoBroker(t *testing.T) {
	in := input(finding("ollama", 11434, conflict.Resolvable, "ollama.service"))
	in.Broker = false
	p := Make(in)
	r := p.Items[0].Remedy
	if r.Who != ByAdmin || !strings.Contains(r.Says, "broker is not there") || r.Commands[0] != "sudo portclaim resolve --user alice" || len(p.Yields) != 0 {
		t.Errorf("%s, yields %v", r.Text(), p.Yields)
	}
	// An entry the policy has is never suggested again.
	if strings.Contains(r.Text(), "yield.\"ollama.service\"") {
		t.Errorf("suggests the entry the policy already has: %s", r.Text())
	}
}

func TestRootMayYieldWhatTheManifestNames(t *testing.T) {
	in := input(finding("searx", 8888, conflict.Resolvable, "searx.service"))
	in.Root = true
	p := Make(in)
	if p.Items[0].Remedy.Who != ByResolve || len(p.Yields) != 1 {
		t.Errorf("%+v", p)
	}
	// Root reads it: the unit yields to alice, not to "you".
	if r := p.Items[0].Remedy; r.Says != "`portclaim resolve --user alice` makes searx.service yield to alice" {
		t.Errorf("%q", r.Says)
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
	if got := p.Items[2].Remedy; got.MovePort != 8887 || got.MoveLine != "" || !strings.Contains(got.Move, "port 8887, which is free") {
		t.Errorf("declared by hand: %+v", got)
	}
	if got := p.Items[0].Remedy; got.Who != ByOtherUser || !strings.Contains(got.Says, "bob's podman-x.service holds 11434/tcp") {
		t.Errorf("%+v", got)
	}
}

func TestStrategies(t *testing.T) {
	in := input(finding("ollama", 11434, conflict.Resolvable, "ollama.service"))
	in.Manifest.Strategy = manifest.DisableUser
	p := Make(in)
	if r := p.Items[0].Remedy; r.Who != ByYou || !strings.Contains(r.Says, "remove services.podman.containers.local-ai-ollama from home.nix") || len(p.Yields) != 0 {
		t.Errorf("disable-user: %s, yields %v", r.Text(), p.Yields)
	}
}

// TestStrategyReportAsksNoResolve: under strategy report resolve acts on
// nothing (as root neither), so the remedy is the user's strategy line,
// never a resolve command; the administrator's lines come with it where
// the system side does not let the unit yield yet.
func TestStrategyReportAsksNoResolve(t *testing.T) {
	const switchStrategy = `services.portclaim.strategy = "disable-system";`
	const says = "strategy report: portclaim changes nothing. ollama.service holds 11434/tcp; for `portclaim resolve` to make it yield, set the strategy in home.nix"
	const move = "or move podman-local-ai-ollama.service to port 11435, which is free, in home.nix"
	const moveLine = `services.podman.containers.local-ai-ollama.ports = [ "8080:80" "11435:11434" ];`
	report := func(in Input) Input {
		in.Manifest.Strategy = manifest.Report
		return in
	}
	noPolicy := report(input(finding("ollama", 11434, conflict.Resolvable, "ollama.service")))
	noPolicy.Policy, noPolicy.PolicyProblem = nil, "no portclaim policy is installed"
	noBroker := report(input(finding("ollama", 11434, conflict.Resolvable, "ollama.service")))
	noBroker.Broker = false
	asRoot := report(input(finding("ollama", 11434, conflict.Resolvable, "ollama.service")))
	asRoot.Policy, asRoot.Root = nil, true
	cases := []struct {
		name string
		in   Input
		want Remedy
	}{
		{"allowed, broker there", report(input(finding("ollama", 11434, conflict.Resolvable, "ollama.service"))),
			Remedy{Who: ByYou, Says: says, Home: []string{switchStrategy}, Move: move, MoveLine: moveLine, MovePort: 11435}},
		{"no policy", noPolicy,
			Remedy{Who: ByYou, Says: says + ", and no system policy lets it yield to you (no portclaim policy is installed): in configuration.nix, enable portclaim and let it yield, or turn the system service off for good",
				NixOS: []string{"services.portclaim.enable = true;", `services.portclaim.yield."ollama.service".users = [ "alice" ];`, "services.ollama.enable = false;"},
				Home:  []string{switchStrategy}, Move: move, MoveLine: moveLine, MovePort: 11435}},
		{"no broker", noBroker,
			Remedy{Who: ByYou, Says: says + ", and the system policy lets ollama.service yield to you, but portclaim's broker is not there (no /run/portclaim/broker.sock): enable portclaim's NixOS module in configuration.nix",
				NixOS: []string{"services.portclaim.enable = true;"}, Home: []string{switchStrategy}, Move: move, MoveLine: moveLine, MovePort: 11435}},
		{"root for alice", asRoot,
			Remedy{Who: ByYou, Says: says, Home: []string{switchStrategy}, Move: move, MoveLine: moveLine, MovePort: 11435}},
	}
	for _, c := range cases {
		p := Make(c.in)
		if got := p.Items[0].Remedy; !reflect.DeepEqual(got, c.want) || len(p.Yields) != 0 {
			t.Errorf("%s:\n got %#v\nwant %#v\nyields %v", c.name, got, c.want, p.Yields)
		}
	}
	latent := report(input(finding("mindsdb", 47334, conflict.Latent, "mindsdb.service")))
	latent.Policy.Yield["mindsdb.service"] = []string{"alice"}
	if r := Make(latent).Items[0].Remedy; r.Says != "strategy report: portclaim changes nothing. mindsdb.service is stopped but enabled, so it takes 47334/tcp at boot, before your user units start; for `portclaim resolve` to make it yield, set the strategy in home.nix" {
		t.Errorf("latent: %q", r.Says)
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
	if r.Who != ByAdmin || !strings.Contains(r.Text(), `yield."ollama.socket".users = [ "alice" ];`) || strings.Contains(r.Text(), `yield."ollama.service"`) {
		t.Errorf("the socket missing from the policy: %s", r.Text())
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
	in.Broker, in.BrokerSocket = false, "/tmp/elsewhere.sock"
	if r := Make(in).Items[0].Remedy; r.Who != ByAdmin || !strings.Contains(r.Says, "(no /tmp/elsewhere.sock)") {
		t.Errorf("%s", r.Text())
	}
}
