package conflict

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/holder"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/manifest"
)

const alice = 1000

func sock(addr string, port uint16, uid uint32, inode uint64) host.Socket {
	return host.Socket{Endpoint: endpoint.Endpoint{Proto: endpoint.TCP, Addr: netip.MustParseAddr(addr), Port: port}, UID: uid, Inode: inode}
}

func heldBy(unit host.UnitRef, c holder.Confidence) holder.Holder {
	return holder.Holder{Unit: unit, PID: 42, Command: "x", Confidence: c}
}

// classic is a manifest of five services on the known services' units
// (a fixed fixture: the built-in map merges the two that share 8080).
func classic() manifest.Manifest {
	m := manifest.Manifest{Version: manifest.Version, Strategy: manifest.DefaultStrategy, AutoResolve: true}
	for _, s := range []struct {
		name  string
		ports []uint16
	}{{"ollama", []uint16{11434}}, {"qdrant", []uint16{6333, 6334}}, {"llama-cpp", []uint16{8080}}, {"open-webui", []uint16{3001}}, {"mindsdb", []uint16{47334}}} {
		svc := manifest.Service{Name: s.name, SystemUnits: []string{s.name + ".service"}, UserUnits: []string{"podman-local-ai-" + s.name + ".service"}}
		for _, p := range s.ports {
			svc.Ports = append(svc.Ports, endpoint.Endpoint{Proto: endpoint.TCP, Port: p})
		}
		m.Services = append(m.Services, svc)
	}
	return m
}

func input(socks []host.Socket, holders map[uint64]holder.Holder, system map[string]host.Unit) Input {
	return Input{
		Manifest: classic(), UserUID: alice,
		Sockets: socks, Holders: holders, System: system,
		NameOf: func(uid uint32) string { return map[uint32]string{1000: "alice", 1001: "bob"}[uid] },
	}
}

// kinds returns "service port kind" for every finding.
func kinds(fs []Finding) string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Service+" "+f.Want.String()+" "+string(f.Kind))
	}
	return strings.Join(out, "\n")
}

func TestAllFree(t *testing.T) {
	fs := Classify(input(nil, nil, nil))
	want := "ollama *:11434 free\nqdrant *:6333 free\nqdrant *:6334 free\nllama-cpp *:8080 free\nopen-webui *:3001 free\nmindsdb *:47334 free"
	if got := kinds(fs); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if summary(fs) != "no conflicts" {
		t.Errorf("Summary = %q", summary(fs))
	}
}

func TestEachKind(t *testing.T) {
	socks := []host.Socket{
		sock("127.0.0.1", 11434, 0, 1),   // ollama.service: resolvable
		sock("::", 6333, 1000, 2),        // alice's own qdrant container: self
		sock("127.0.0.1", 6334, 0, 3),    // sshd: system-other
		sock("0.0.0.0", 8080, 1001, 4),   // bob's unit: other-user
		sock("127.0.0.1", 3001, 1000, 5), // alice's other unit: user-other
		sock("0.0.0.0", 9999, 0, 6),      // a port nobody claims
	}
	holders := map[uint64]holder.Holder{
		1: heldBy(host.UnitRef{Name: "ollama.service"}, holder.Confirmed),
		2: heldBy(host.UnitRef{User: true, UserUID: alice, Name: "podman-local-ai-qdrant.service"}, holder.Confirmed),
		3: heldBy(host.UnitRef{Name: "sshd.service"}, holder.Confirmed),
		4: heldBy(host.UnitRef{User: true, UserUID: 1001, Name: "podman-local-ai-llama-cpp.service"}, holder.Probable),
		5: heldBy(host.UnitRef{User: true, UserUID: alice, Name: "devserver.service"}, holder.Confirmed),
	}
	system := map[string]host.Unit{
		"ollama.service":  {ActiveState: "active", UnitFileState: "enabled", LoadState: "loaded"},
		"mindsdb.service": {ActiveState: "inactive", UnitFileState: "enabled", LoadState: "loaded"},
		"qdrant.service":  {ActiveState: "inactive", UnitFileState: "disabled", LoadState: "loaded"},
	}
	fs := Classify(input(socks, holders, system))
	want := strings.Join([]string{
		"ollama *:11434 resolvable", "qdrant *:6333 self", "qdrant *:6334 system-other",
		"llama-cpp *:8080 other-user", "open-webui *:3001 user-other", "mindsdb *:47334 latent",
	}, "\n")
	if got := kinds(fs); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if got := summary(fs); got != "5 conflicts (1 resolvable, 1 system-other, 1 other-user, 1 user-other, 1 latent)" {
		t.Errorf("Summary = %q", got)
	}
	if fs[3].Manager != "user bob" || fs[0].Manager != "system" || fs[0].Unit != "ollama.service" {
		t.Errorf("managers: %q %q %q", fs[3].Manager, fs[0].Manager, fs[0].Unit)
	}
}

func TestNoUnitAndUnknown(t *testing.T) {
	socks := []host.Socket{sock("0.0.0.0", 11434, 65534, 1), sock("::1", 6333, 0, 2), sock("::1", 6334, 0, 3)}
	holders := map[uint64]holder.Holder{
		1: heldBy(host.UnitRef{}, holder.Probable),
		2: {UID: 0, Confidence: holder.Unknown, Why: "socket owned by uid 0"},
		3: heldBy(host.UnitRef{Name: "session-4.scope"}, holder.Confirmed),
	}
	got := kinds(Classify(input(socks, holders, nil)))
	if !strings.Contains(got, "ollama *:11434 no-unit") || !strings.Contains(got, "qdrant *:6333 unknown") || !strings.Contains(got, "qdrant *:6334 no-unit") {
		t.Errorf("got\n%s", got)
	}
}

func TestProbableHolderThatSystemdCallsInactiveIsUnknown(t *testing.T) {
	socks := []host.Socket{sock("127.0.0.1", 11434, 0, 1)}
	holders := map[uint64]holder.Holder{1: heldBy(host.UnitRef{Name: "ollama.service"}, holder.Probable)}
	fs := Classify(input(socks, holders, map[string]host.Unit{"ollama.service": {ActiveState: "inactive"}}))
	if fs[0].Kind != Unknown {
		t.Errorf("kind %s, want unknown", fs[0].Kind)
	}
}

func TestNonOverlappingSocketIsNotAConflict(t *testing.T) {
	m, err := manifest.Parse("t", []byte(`{"version":1,"services":[{"name":"a","systemUnits":["a.service"],"userUnits":["ua.service"],"ports":[{"port":7000,"address":"127.0.0.3"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	in := input([]host.Socket{sock("127.0.0.2", 7000, 0, 1)}, map[uint64]holder.Holder{1: heldBy(host.UnitRef{Name: "a.service"}, holder.Confirmed)}, nil)
	in.Manifest = m
	if got := kinds(Classify(in)); got != "a 127.0.0.3:7000 free" {
		t.Errorf("got %q", got)
	}
}

func TestSocketActivatedServiceIsCreditedToItsSocket(t *testing.T) {
	socks := []host.Socket{sock("0.0.0.0", 11434, 0, 1)}
	holders := map[uint64]holder.Holder{1: heldBy(host.UnitRef{Name: "init.scope"}, holder.Confirmed)}
	system := map[string]host.Unit{"ollama.service": {ActiveState: "inactive", TriggeredBy: []string{"ollama.socket"}}}
	fs := Classify(input(socks, holders, system))
	if fs[0].Kind != Resolvable || fs[0].Unit != "ollama.socket" || fs[0].SystemUnit != "ollama.service" {
		t.Errorf("got %+v, want resolvable, held by ollama.socket for ollama.service", fs[0])
	}
}

func TestClaimedUnitIsNotLatent(t *testing.T) {
	system := map[string]host.Unit{"mindsdb.service": {ActiveState: "inactive", UnitFileState: "enabled", LoadState: "loaded"}}
	in := input(nil, nil, system)
	in.KeptDown = map[string]bool{"mindsdb.service": true}
	if got := summary(Classify(in)); got != "no conflicts" {
		t.Errorf("a claimed, stopped, enabled unit: %s; want no conflicts", got)
	}
}

// TestUnitOnlyOthersKeepDownIsLatent: bob's claim keeps a unit down that
// ran before; for alice it comes back when bob gives it back, so it is
// latent for her until her own claim keeps it down too.
func TestUnitOnlyOthersKeepDownIsLatent(t *testing.T) {
	system := map[string]host.Unit{"mindsdb.service": {ActiveState: "inactive", UnitFileState: "static", LoadState: "loaded"}}
	in := input(nil, nil, system)
	if got := summary(Classify(in)); got != "no conflicts" {
		t.Fatalf("a stopped static unit nobody claims: %s", got)
	}
	in.Others = map[string]bool{"mindsdb.service": true}
	if got := summary(Classify(in)); got != "1 conflict (1 latent)" {
		t.Errorf("kept down by bob alone: %s", got)
	}
}

func TestRootSocketOfAListeningDotSocketIsProbablyIts(t *testing.T) {
	socks := []host.Socket{sock("127.0.0.1", 11434, 0, 1)}
	holders := map[uint64]holder.Holder{1: {UID: 0, Confidence: holder.Unknown}}
	system := map[string]host.Unit{
		"ollama.service": {ActiveState: "inactive", TriggeredBy: []string{"ollama.socket"}},
		"ollama.socket":  {ActiveState: "active"},
	}
	fs := Classify(input(socks, holders, system))
	if fs[0].Kind != Resolvable || fs[0].Unit != "ollama.socket" || fs[0].Holder.Confidence != holder.Probable {
		t.Errorf("got %+v", fs[0])
	}
	// check names the socket unit as the holder, not "outside any unit".
	if u := fs[0].Holder.Unit; u.Name != "ollama.socket" || u.User {
		t.Errorf("holder unit %+v, want system ollama.socket", u)
	}
	if got := fs[0].Holder.Describe(nil); got != "system ollama.socket" {
		t.Errorf("described as %q, want %q", got, "system ollama.socket")
	}
	system["ollama.socket"] = host.Unit{ActiveState: "inactive"}
	if fs := Classify(input(socks, holders, system)); fs[0].Kind != Unknown {
		t.Errorf("socket not listening: got %s, want unknown", fs[0].Kind)
	}
}

// summary counts findings by kind, for the tests to read a
// classification at a glance: "2 conflicts (1 resolvable, 1
// latent)", "1 conflict (1 unknown)", "no conflicts".
func summary(fs []Finding) string {
	counts := map[Kind]int{}
	var order []Kind
	n := 0
	for _, f := range fs {
		if !f.Kind.Conflict() {
			continue
		}
		if counts[f.Kind] == 0 {
			order = append(order, f.Kind)
		}
		counts[f.Kind]++
		n++
	}
	if n == 0 {
		return "no conflicts"
	}
	var parts []string
	for _, k := range order {
		parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
	}
	noun := "conflicts"
	if n == 1 {
		noun = "conflict"
	}
	return fmt.Sprintf("%d %s (%s)", n, noun, strings.Join(parts, ", "))
}
