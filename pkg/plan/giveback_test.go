package plan

import (
	"fmt"
	"strings"
	"testing"

	"github.com/portclaim/portclaim/pkg/claim"
	"github.com/portclaim/portclaim/pkg/conflict"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/manifest"
)

func onTCP(ports ...uint16) []endpoint.Endpoint {
	var out []endpoint.Endpoint
	for _, p := range ports {
		out = append(out, endpoint.Endpoint{Proto: endpoint.TCP, Port: p})
	}
	return out
}

// claimOf is alice's readable record on unit, stopped with with.
func claimOf(unit, with string) claim.Record {
	return claim.Record{User: "alice", Unit: unit, Claim: claim.Claim{User: "alice", Unit: unit, With: with}}
}

func homeOf(svcs ...manifest.Service) manifest.Manifest { return manifest.Manifest{Services: svcs} }

func svcOf(name string, system, user []string, ports ...uint16) manifest.Service {
	return manifest.Service{Name: name, SystemUnits: system, UserUnits: user, Ports: onTCP(ports...)}
}

// TestGiveBackWhatTheManifestNoLongerClaims: a claim goes back when no
// service names its unit any more (a renamed service still does), with
// what was stopped along and a socket going with their service; a
// release asked for before goes back even if declared; an unreadable
// record only with --all; each unit once.
func TestGiveBackWhatTheManifestNoLongerClaims(t *testing.T) {
	deferred := claimOf("jellyfin.service", "")
	deferred.Claim.GiveBack = &claim.GiveBack{Why: "your podman-jellyfin.service still holds 8096/tcp"}
	broken := claim.Record{User: "alice", Unit: "qdrant.service", Problem: "not root's"}
	releasing := claimOf("searx.service", "")
	releasing.Releasing = true
	entries := []claim.Record{
		claimOf("ollama.service", ""), claimOf("ollama.socket", ""), claimOf("ollama-model-loader.service", "ollama.service"),
		claimOf("redis.service", ""), deferred, broken, releasing, claimOf("searx.service", ""),
	}
	m := homeOf(
		svcOf("ai", []string{"ollama.service"}, nil, 11434), // renamed from ollama: still claims it
		svcOf("jellyfin", []string{"jellyfin.service"}, nil, 8096),
		svcOf("qdrant", []string{"qdrant.service"}, nil, 6333),
	)
	for _, c := range []struct {
		all  bool
		want string
	}{
		{false, "redis.service jellyfin.service searx.service"},
		{true, "ollama.service ollama.socket ollama-model-loader.service redis.service jellyfin.service qdrant.service searx.service"},
	} {
		if got := strings.Join(GiveBack(entries, m, c.all), " "); got != c.want {
			t.Errorf("all %v: %q, want %q", c.all, got, c.want)
		}
	}
	for unit, want := range map[string]bool{"ollama.service": true, "ollama.socket": true, "ollama-model-loader.service": true, "redis.service": false} {
		if got := Declared(m, claimOf(unit, map[bool]string{true: "ollama.service"}[unit == "ollama-model-loader.service"])); got != want {
			t.Errorf("Declared %s: %v, want %v", unit, got, want)
		}
	}
}

// TestClaimedIsEveryUserUnitAClaimKeepsItsPortsFor: in a switch, release
// checks the first user unit of each service a readable claim, not one
// being released, keeps its ports free for.
func TestClaimedIsEveryUserUnitAClaimKeepsItsPortsFor(t *testing.T) {
	releasing := claimOf("searx.service", "")
	releasing.Releasing = true
	entries := []claim.Record{claimOf("ollama.socket", ""), {User: "alice", Unit: "qdrant.service", Problem: "not whole"}, releasing,
		claimOf("redis.service", "")}
	m := homeOf(
		svcOf("ollama", []string{"ollama.service"}, []string{"podman-ollama.service", "ollama-pull.service"}, 11434),
		svcOf("qdrant", []string{"qdrant.service"}, []string{"podman-qdrant.service"}, 6333),
		svcOf("searx", []string{"searx.service"}, []string{"podman-searx.service"}, 8888),
		svcOf("redis", []string{"redis.service"}, nil, 6379),
	)
	got := Claimed(entries, m)
	if len(got) != 1 || got[0].Unit != "podman-ollama.service" || fmt.Sprint(got[0].Ports) != fmt.Sprint(onTCP(11434)) {
		t.Errorf("%+v, want podman-ollama.service on 11434/tcp alone", got)
	}
}

// TestFreedFollowsTheYieldsThatFreedThePorts: the user units whose
// conflicts a done yield resolved, in the plan's order, each port once;
// a conflict not resolve's, or whose yield did not free its ports, is
// left out.
func TestFreedFollowsTheYieldsThatFreedThePorts(t *testing.T) {
	item := func(who Who, system, user string, port uint16) Item {
		return Item{Finding: conflict.Finding{SystemUnit: system, UserUnit: user, Want: onTCP(port)[0]}, Remedy: Remedy{Who: who}}
	}
	p := Plan{Items: []Item{
		item(ByResolve, "searx.service", "podman-searx.service", 8888),
		item(ByResolve, "ollama.service", "podman-ollama.service", 11434),
		item(ByResolve, "ollama.service", "podman-ollama.service", 11434),
		item(ByResolve, "ollama.service", "podman-ollama.service", 11435),
		item(ByAdmin, "redis.service", "podman-redis.service", 6379),
		item(ByResolve, "qdrant.service", "podman-qdrant.service", 6333),
		item(ByResolve, "ollama.service", "", 11436),
	}}
	got := Freed(p, map[string]bool{"ollama.service": true, "searx.service": true, "redis.service": true})
	if fmt.Sprintf("%v", got) != fmt.Sprintf("%v", []UserUnit{{"podman-searx.service", onTCP(8888)}, {"podman-ollama.service", onTCP(11434, 11435)}}) {
		t.Errorf("%+v", got)
	}
}
