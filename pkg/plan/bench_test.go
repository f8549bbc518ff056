package plan

import (
	"fmt"
	"testing"

	"github.com/portclaim/portclaim/pkg/conflict"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/manifest"
)

// BenchmarkPlan500Conflicts: 500 consecutive claimed ports, each held by
// a unit the policy does not name, so that every one gets a move: the
// case where each search for a free port once scanned every socket and
// claim (the end-to-end bench's N=500 as a user).
func BenchmarkPlan500Conflicts(b *testing.B) {
	m := manifest.Manifest{Version: 2, Strategy: manifest.DisableSystem}
	var socks []host.Socket
	var fs []conflict.Finding
	for i := 0; i < 500; i++ {
		port := uint16(30000 + i)
		unit := fmt.Sprintf("pc-bench-%d.service", i)
		m.Services = append(m.Services, manifest.Service{Name: fmt.Sprintf("b%d", i), SystemUnits: []string{unit},
			UserUnits: []string{fmt.Sprintf("podman-bench-%d.service", i)}, Ports: []endpoint.Endpoint{{Proto: endpoint.TCP, Port: port}}})
		socks = append(socks, host.Socket{Endpoint: endpoint.Endpoint{Proto: endpoint.TCP, Port: port}})
		fs = append(fs, conflict.Finding{Service: fmt.Sprintf("b%d", i), Want: endpoint.Endpoint{Proto: endpoint.TCP, Port: port},
			Kind: conflict.Resolvable, Unit: unit, SystemUnit: unit, UserUnit: fmt.Sprintf("podman-bench-%d.service", i)})
	}
	in := Input{Manifest: m, Findings: fs, User: "alice", Sockets: socks, PolicyProblem: "no policy"}
	b.ReportAllocs()
	for b.Loop() {
		if p := Make(in); len(p.Items) != 500 {
			b.Fatal(len(p.Items))
		}
	}
}
