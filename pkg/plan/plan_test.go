package plan

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/portclaim/portclaim/pkg/claims"
	"github.com/portclaim/portclaim/pkg/conflict"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/manifest"
	"github.com/portclaim/portclaim/pkg/policy"
)

const dir = "/var/lib/portclaim/claims"

func finding(service, unit string, kind conflict.Kind, port uint16) conflict.Finding {
	return conflict.Finding{Service: service, SystemUnit: unit, Kind: kind, UserUnit: "podman-local-ai-" + service + ".service",
		Want: endpoint.Endpoint{Proto: endpoint.TCP, Port: port}}
}

func keptDown(user string, us ...string) map[string][]host.Condition {
	out := map[string][]host.Condition{}
	for _, u := range us {
		out[u] = []host.Condition{{Type: "ConditionPathExists", Negate: true, Param: dir + "/" + user + "/" + u}}
	}
	return out
}

func baseInput(fs ...conflict.Finding) Input {
	pol := policy.Policy{Path: "/etc/portclaim/policy.json", ClaimsDir: dir,
		Yield: map[string][]string{"qdrant.service": {"alice"}, "ollama.service": {"bob"}}}
	return Input{Manifest: manifest.Default(), Findings: fs, User: "alice", Policy: &pol, ClaimsDir: dir,
		Conditions: keptDown("alice", "qdrant.service", "ollama.service")}
}

func TestYieldGroupsPortsOfOneUnit(t *testing.T) {
	steps := Resolve(baseInput(finding("qdrant", "qdrant.service", conflict.Resolvable, 6333), finding("qdrant", "qdrant.service", conflict.Resolvable, 6334)))
	if len(steps) != 1 || steps[0].Action != Yield || len(steps[0].Findings) != 2 || len(steps[0].Ports) != 2 || steps[0].Method != claims.ByCondition {
		t.Fatalf("got %+v", steps)
	}
}

func TestRefusedWithoutPolicyGrant(t *testing.T) {
	steps := Resolve(baseInput(finding("ollama", "ollama.service", conflict.Resolvable, 11434)))
	if steps[0].Action != Refuse {
		t.Fatalf("ollama.service yields to bob only; got %+v", steps[0])
	}
	for _, want := range []string{`services.portclaim.yield."ollama.service".users = [ "alice" ];`, "services.ollama.enable = false;", "systemctl stop ollama.service"} {
		if !strings.Contains(steps[0].Fix, want) {
			t.Errorf("fix %q lacks %q", steps[0].Fix, want)
		}
	}
	in := baseInput(finding("qdrant", "qdrant.service", conflict.Resolvable, 6333))
	in.Policy, in.NoPolicy = nil, "no portclaim policy is installed"
	if st := Resolve(in)[0]; st.Action != Refuse || !strings.HasPrefix(st.Fix, "no portclaim policy is installed") {
		t.Fatalf("no policy: got %+v", st)
	}
}

func TestSocketActivatedUnitYieldsWithItsSocket(t *testing.T) {
	in := baseInput(finding("qdrant", "qdrant.service", conflict.Resolvable, 6333))
	in.System = map[string]host.Unit{"qdrant.service": {TriggeredBy: []string{"qdrant.socket"}}}
	st := Resolve(in)[0]
	if st.Action != Refuse || !strings.Contains(st.Fix, "qdrant.socket") {
		t.Fatalf("the .socket is not in the policy: got %+v", st)
	}
	in.Policy.Yield["qdrant.socket"] = []string{"alice"}
	in.Conditions = keptDown("alice", "qdrant.service", "qdrant.socket")
	st = Resolve(in)[0]
	if st.Action != Yield || strings.Join(st.Units, ",") != "qdrant.socket,qdrant.service" {
		t.Fatalf("got %+v, want both, socket first", st)
	}
}

func TestRootMasksWhereThereIsNoCondition(t *testing.T) {
	in := baseInput(finding("ollama", "ollama.service", conflict.Resolvable, 11434))
	in.Root, in.Policy, in.Conditions = true, nil, nil
	st := Resolve(in)[0]
	if st.Action != Yield || st.Method != claims.ByTransientMask {
		t.Fatalf("got %+v", st)
	}
	in.Root = false
	in.Policy = &policy.Policy{Yield: map[string][]string{"ollama.service": {"alice"}}}
	if st := Resolve(in)[0]; st.Method != "" || !strings.Contains(st.Fix, "will start again at boot") {
		t.Fatalf("user without condition: got %+v", st)
	}
}

func TestLatentIsKeptDownAndStrategiesReport(t *testing.T) {
	if st := Resolve(baseInput(finding("qdrant", "qdrant.service", conflict.Latent, 6333)))[0]; st.Action != KeepDown {
		t.Fatalf("latent: got %+v", st)
	}
	in := baseInput(finding("qdrant", "qdrant.service", conflict.Resolvable, 6333))
	in.Manifest.Strategy = manifest.DisableUser
	st := Resolve(in)[0]
	if st.Action != Report || !strings.Contains(st.Fix, "remove services.podman.containers.local-ai-qdrant") {
		t.Fatalf("disable-user: got %+v", st)
	}
	in.Manifest.Strategy = manifest.Report
	if st := Resolve(in)[0]; st.Action != Report {
		t.Fatalf("report: got %+v", st)
	}
	other := finding("qdrant", "", conflict.SystemOther, 6333)
	other.Next = "sshd.service is not among qdrant's systemUnits"
	if st := Resolve(baseInput(other))[0]; st.Action != Report || st.Fix != other.Next {
		t.Fatalf("system-other: got %+v", st)
	}
}

func TestRelease(t *testing.T) {
	m := manifest.Default()
	kept := claims.Claim{Unit: "qdrant.service", Service: "qdrant", Ports: []claims.Port{{Port: 6333, Protocol: "tcp"}}}
	gone := claims.Claim{Unit: "old.service", Service: "old", Ports: []claims.Port{{Port: 7000, Protocol: "tcp"}},
		Prior: claims.Prior{ActiveState: "active"}}
	held := claims.Claim{Unit: "busy.service", Service: "busy", Ports: []claims.Port{{Port: 7001, Protocol: "tcp"}}}
	now := []host.Socket{{Endpoint: endpoint.Endpoint{Proto: endpoint.TCP, Addr: netip.MustParseAddr("0.0.0.0"), Port: 7001}, UID: 1000}}
	steps := Release([]claims.Claim{kept, gone, held}, m, false, now, nil)
	if len(steps) != 2 || steps[1].Claim.Unit != "old.service" || !steps[1].Start || steps[1].Deferred != "" ||
		steps[0].Claim.Unit != "busy.service" || !strings.Contains(steps[0].Deferred, "still held") {
		t.Fatalf("got %+v", steps)
	}
	if all := Release([]claims.Claim{kept}, m, true, nil, nil); len(all) != 1 {
		t.Fatalf("--all: got %+v", all)
	}
}

func TestSuggestPortAndMoveLine(t *testing.T) {
	want := endpoint.Endpoint{Proto: endpoint.TCP, Port: 6333}
	now := []host.Socket{{Endpoint: endpoint.Endpoint{Proto: endpoint.TCP, Addr: netip.MustParseAddr("0.0.0.0"), Port: 6333}}}
	// 6334 is claimed by qdrant itself, 6332 is free.
	if p := SuggestPort(want, now, manifest.Default()); p != 6332 {
		t.Fatalf("SuggestPort = %d, want 6332", p)
	}
	f := finding("qdrant", "qdrant.service", conflict.SystemOther, 6333)
	if got := MoveLine(f, 6335); got != `services.podman.containers.local-ai-qdrant.ports = [ "6335:6333" ];` {
		t.Errorf("MoveLine = %s", got)
	}
}

func TestReleaseKeepsAClaimWhoseUnitIsStillNamed(t *testing.T) {
	// The service was renamed in home.nix ("ollama" -> "llm"), the unit and
	// port stayed: the claim stays.
	m, _ := manifest.Parse("t", []byte(`{"version":1,"services":[{"name":"llm","systemUnits":["ollama.service"],"userUnits":["podman-llm.service"],"ports":[{"port":11434}]}]}`))
	c := claims.Claim{Unit: "ollama.service", Service: "ollama", Prior: claims.Prior{ActiveState: "active"}}
	if steps := Release([]claims.Claim{c}, m, false, nil, nil); len(steps) != 0 {
		t.Fatalf("released a claim whose unit is still named: %+v", steps)
	}
}

func TestReleaseOrderAndRunningUnits(t *testing.T) {
	cs := []claims.Claim{
		{Unit: "q.service", Prior: claims.Prior{ActiveState: "inactive"}},
		{Unit: "q.socket", Prior: claims.Prior{ActiveState: "active"}},
		{Unit: "r.service", Prior: claims.Prior{ActiveState: "active"}},
	}
	steps := Release(cs, manifest.Manifest{}, true, nil, map[string]bool{"r.service": true})
	var order []string
	for _, s := range steps {
		order = append(order, fmt.Sprintf("%s start=%v", s.Claim.Unit, s.Start))
	}
	if got := strings.Join(order, ", "); got != "q.socket start=true, q.service start=false, r.service start=false" {
		t.Errorf("release order = %s", got)
	}
}
