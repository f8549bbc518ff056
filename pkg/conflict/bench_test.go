package conflict

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/holder"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/manifest"
)

// benchInput is 100,000 sockets and a manifest claiming 1,000 ports, 100
// of them held by their system units.
func benchInput(b *testing.B) (Input, []host.Socket) {
	var svcs []string
	for i := 0; i < 1000; i++ {
		svcs = append(svcs, fmt.Sprintf(`{"name":"s%d","systemUnits":["s%d.service"],"userUnits":["u%d.service"],"ports":[{"port":%d}]}`, i, i, i, 30000+i))
	}
	m, err := manifest.Parse("bench", []byte(`{"version":1,"services":[`+joinComma(svcs)+`]}`))
	if err != nil {
		b.Fatal(err)
	}
	all := make([]host.Socket, 0, 100_000)
	holders := map[uint64]holder.Holder{}
	for i := 0; i < 100_000; i++ {
		port := uint16(1024 + i%28000) // unrelated ports below the claims
		if i < 100 {
			port = uint16(30000 + i*10)
			holders[uint64(i)] = holder.Holder{Unit: host.UnitRef{Name: fmt.Sprintf("s%d.service", i*10)}, PID: 100 + i, Confidence: holder.Confirmed}
		}
		all = append(all, host.Socket{Endpoint: endpoint.Endpoint{Proto: endpoint.TCP, Addr: netip.MustParseAddr("127.0.0.1"), Port: port}, Inode: uint64(i)})
	}
	return Input{Manifest: m, UserUID: 1000, Holders: holders}, all
}

func joinComma(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}

// BenchmarkPlan100kSockets1kPorts: the sockets in the way of 1,000 claimed
// ports among 100,000, then the verdict on every claimed port.
func BenchmarkPlan100kSockets1kPorts(b *testing.B) {
	in, all := benchInput(b)
	b.ReportAllocs()
	for b.Loop() {
		in.Sockets = InWay(all, in.Manifest)
		fs := Classify(in)
		if len(fs) != 1000 || len(in.Sockets) != 100 {
			b.Fatalf("%d findings, %d in the way", len(fs), len(in.Sockets))
		}
	}
}
