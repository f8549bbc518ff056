// Moving a user's container to a free port: one move for every port of a
// service that is in the way.
package plan

import (
	"fmt"

	"github.com/portclaim/portclaim/pkg/conflict"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/manifest"
)

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
