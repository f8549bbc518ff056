package manifest

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
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
	// Ports are the ports the home-manager twin usually publishes.
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
func Default() Manifest {
	m := Manifest{Version: Version, Strategy: DefaultStrategy, AutoResolve: true}
	for _, k := range known() {
		svc := Service{Name: k.Name, SystemUnits: slices.Clone(k.SystemUnits),
			UserUnits: []string{"podman-local-ai-" + k.Name + ".service"}}
		for _, p := range k.Ports {
			svc.Ports = append(svc.Ports, endpoint.Endpoint{Proto: endpoint.TCP, Port: p})
		}
		m.Services = append(m.Services, svc)
	}
	return m
}
