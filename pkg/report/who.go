package report

import (
	"fmt"
	"io"

	"github.com/portclaim/portclaim/pkg/endpoint"
)

// WhoDoc is who's JSON document: every socket on a port and its holder.
type WhoDoc struct {
	Port uint16 `json:"port"`
	// Protocol is the one asked for (PORT/tcp, PORT/udp); absent for
	// both.
	Protocol string      `json:"protocol,omitempty"`
	Sockets  []WhoSocket `json:"sockets"`
}

// WhoSocket is one socket on the port asked about.
type WhoSocket struct {
	Protocol string `json:"protocol"`
	Address  string `json:"address"`
	Holder   Holder `json:"holder"`
	Says     string `json:"says"`
}

// WhoText writes who's answer for people: a line per socket, or that
// nothing holds asked (the port as given).
func WhoText(w io.Writer, asked string, doc WhoDoc) {
	if len(doc.Sockets) == 0 {
		fmt.Fprintf(w, "%s: nothing holds it\n", asked)
	}
	for _, s := range doc.Sockets {
		fmt.Fprintf(w, "%s %s: %s\n", s.Protocol, s.Address, s.Says)
	}
}

// MachineText writes root's check of a machine it looks after no user
// on: each port of the built-in map, and what holds it, a line each.
func MachineText(w io.Writer, ports []MachinePort) {
	fmt.Fprintln(w, "portclaim check: no user has claims and the policy names none; the built-in map's ports on this machine:")
	for _, p := range ports {
		port := endpoint.Endpoint{Proto: endpoint.Proto(p.Protocol), Port: p.Port}.PortProto()
		if len(p.Sockets) == 0 {
			fmt.Fprintf(w, "  %-10s %s: free\n", port, p.Service)
		}
		for _, s := range p.Sockets {
			fmt.Fprintf(w, "  %-10s %s: %s holds %s\n", port, p.Service, s.Says, s.Address)
		}
	}
}
