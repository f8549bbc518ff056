package manifest

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/portclaim/portclaim/pkg/endpoint"
)

// knownJSON is the table of services portclaim knows by name. The Nix
// modules read the same file (builtins.fromJSON): it pairs a podman
// container with the system service it collides with, names the NixOS
// option that turns that service off, and is the built-in map below.
//
//go:embed known-services.json
var knownJSON []byte

// Known is one service portclaim knows by name.
type Known struct {
	Name string
	// NixOSModule is the NixOS option set that runs the system service
	// ("services.ollama"), or "" when nixpkgs has none: then portclaim
	// names no option to turn it off.
	NixOSModule string `json:"nixosModule"`
	// SystemUnits are the units that hold the ports.
	SystemUnits []string `json:"systemUnits"`
	// Family are the other units the NixOS module defines around them
	// (ollama-model-loader.service, which BindsTo= ollama.service): a stop
	// takes them along, so the NixOS module lets them yield to the same
	// users.
	Family []string `json:"family"`
	// Ports are the ports the service listens on by default (its NixOS
	// module's defaults): what a unit written by hand is taken to hold,
	// and what the built-in map claims.
	Ports []uint16 `json:"ports"`
}

// known is decoded on first use: most runs never need it.
var known = sync.OnceValue(func() []Known { return mustKnown(knownJSON) })

func mustKnown(data []byte) []Known {
	var doc struct {
		Services map[string]Known `json:"services"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		panic(fmt.Sprintf("known-services.json: %v", err)) // a test keeps it valid
	}
	var out []Known
	for name, k := range doc.Services {
		k.Name = name
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// KnownFor finds the known service that runs systemUnit.
func KnownFor(systemUnit string) (Known, bool) {
	for _, k := range known() {
		if slices.Contains(k.SystemUnits, systemUnit) {
			return k, true
		}
	}
	return Known{}, false
}

// Default is the built-in map, used when there is no manifest: every
// known service's ports, claimed on every address for the podman
// container home-manager would call podman-local-ai-<name>.service.
// Known services that listen on one port by default (llama-cpp and
// open-webui on 8080) are one claim, "llama-cpp-or-open-webui", with
// both services' units: a manifest claims a port once, and either system
// unit may be the one that holds it.
func Default() Manifest {
	m := Manifest{Version: Version, Strategy: DefaultStrategy, AutoResolve: true}
	for _, group := range sharingPorts(known()) {
		var names []string
		svc := Service{}
		for _, k := range group {
			names = append(names, k.Name)
			svc.SystemUnits = append(svc.SystemUnits, k.SystemUnits...)
			svc.UserUnits = append(svc.UserUnits, "podman-local-ai-"+k.Name+".service")
			for _, p := range k.Ports {
				e := endpoint.Endpoint{Proto: endpoint.TCP, Port: p}
				if !slices.Contains(svc.Ports, e) {
					svc.Ports = append(svc.Ports, e)
				}
			}
		}
		svc.Name = strings.Join(names, "-or-")
		m.Services = append(m.Services, svc)
	}
	return m
}

// sharingPorts groups the known services (sorted by name) so that
// services that share a port, directly or through others, are one group,
// at the place of its first member, its members by name.
func sharingPorts(ks []Known) [][]Known {
	var groups [][]Known
	for _, k := range ks {
		first := -1
		for i := 0; i < len(groups); i++ {
			if !slices.ContainsFunc(groups[i], func(o Known) bool { return sharesPort(o, k) }) {
				continue
			}
			if first < 0 {
				first = i
				groups[i] = append(groups[i], k)
				continue
			}
			// k shares with two groups: the later joins the first.
			groups[first] = append(groups[first], groups[i]...)
			groups = slices.Delete(groups, i, i+1)
			i--
		}
		if first < 0 {
			groups = append(groups, []Known{k})
		}
	}
	for _, g := range groups {
		sort.SliceStable(g, func(i, j int) bool { return g[i].Name < g[j].Name })
	}
	return groups
}

func sharesPort(a, b Known) bool {
	return slices.ContainsFunc(a.Ports, func(p uint16) bool { return slices.Contains(b.Ports, p) })
}
