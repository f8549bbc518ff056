package main

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/portclaim/portclaim/pkg/broker"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/gather"
	"github.com/portclaim/portclaim/pkg/holder"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/manifest"
	"github.com/portclaim/portclaim/pkg/report"
	"github.com/portclaim/portclaim/pkg/safeopen"
)

type whoCmd struct {
	Port     string `arg:"" help:"PORT, PORT/tcp or PORT/udp."`
	Manifest string `help:"Manifest whose units are expected on the port (default: yours, else the built-in map)." placeholder:"FILE" type:"path"`
	JSON     bool   `name:"json" help:"Print JSON (schema in the README)."`
}

type whoDoc struct {
	Port uint16 `json:"port"`
	// Protocol is the one asked for (PORT/tcp, PORT/udp); absent for
	// both.
	Protocol string      `json:"protocol,omitempty"`
	Sockets  []whoSocket `json:"sockets"`
}

type whoSocket struct {
	Protocol string        `json:"protocol"`
	Address  string        `json:"address"`
	Holder   report.Holder `json:"holder"`
	Says     string        `json:"says"`
}

func (c *whoCmd) Run(a *app) error {
	port, proto, err := parsePortArg(c.Port)
	if err != nil {
		return fail(exitBadInput, "give PORT, PORT/tcp or PORT/udp, with PORT from 1 to 65535", "%v", err)
	}
	t, err := a.target("", false)
	if err != nil {
		return err
	}
	m, _, err := a.loadManifest(c.Manifest, t)
	if err != nil {
		return err
	}
	var expected []host.UnitRef
	for _, p := range []endpoint.Proto{endpoint.TCP, endpoint.UDP} {
		if proto == "" || proto == p {
			expected = append(expected, holder.Expected(m, host.Socket{Endpoint: endpoint.Endpoint{Proto: p, Port: port}}, t.UID)...)
		}
	}
	held, err := gather.Who(port, proto, expected, a.places)
	if err != nil {
		return fail(exitEnv, "", "%v", err)
	}
	doc := whoDoc{Port: port, Protocol: string(proto), Sockets: []whoSocket{}}
	for _, h := range held {
		manager := "system"
		if h.Holder.Unit.User {
			manager = "user " + a.names.Of(h.Holder.Unit.UserUID)
		}
		says := report.Who(h.Holder, a.names.Of)
		doc.Sockets = append(doc.Sockets, whoSocket{Protocol: string(h.Socket.Proto), Address: h.Socket.Endpoint.String(), Says: says,
			Holder: report.HolderDoc(manager, h.Holder.Unit.Name, h.Holder)})
	}
	if c.JSON {
		if err := report.WriteJSON(a.stdout, doc); err != nil {
			return err
		}
	} else {
		if len(held) == 0 {
			fmt.Fprintf(a.stdout, "%s: nothing holds it\n", c.Port)
		}
		for _, s := range doc.Sockets {
			fmt.Fprintf(a.stdout, "%s %s: %s\n", s.Protocol, s.Address, s.Says)
		}
	}
	if len(held) == 0 {
		return quietExit(exitConflicts) // as fuser and lsof: 1 when nothing is found
	}
	return nil
}

// parsePortArg reads "11434", "11434/tcp" or "53/udp".
func parsePortArg(s string) (uint16, endpoint.Proto, error) {
	num, proto, hasProto := strings.Cut(s, "/")
	n, err := strconv.ParseUint(num, 10, 16)
	if err != nil || n == 0 {
		return 0, "", fmt.Errorf("%q is not a port", s)
	}
	if !hasProto {
		return uint16(n), "", nil
	}
	p, err := endpoint.ParseProto(proto)
	if err != nil {
		return 0, "", fmt.Errorf("%q: %w", s, err)
	}
	return uint16(n), p, nil
}

type validateCmd struct {
	File string `arg:"" help:"Manifest file to check (- for standard input)." type:"path"`
	JSON bool   `name:"json" help:"Print JSON (schema in the README)."`
}

type validateDoc struct {
	File     string   `json:"file"`
	Valid    bool     `json:"valid"`
	Version  int      `json:"version,omitempty"`
	Strategy string   `json:"strategy,omitempty"`
	Services int      `json:"services"`
	Ports    int      `json:"ports"`
	Notes    []string `json:"notes"`
	// Problems each name the JSON path of what is wrong ("" for the
	// whole file) and what; More counts those beyond the ones listed.
	Problems []validateProblem `json:"problems"`
	More     int               `json:"more,omitempty"`
}

type validateProblem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (c *validateCmd) Run(a *app) error {
	name := c.File
	var data []byte
	var err error
	if c.File == "-" {
		name = "standard input"
		data, err = readAtMost(a.stdin, manifest.MaxSize)
	} else {
		data, err = safeopen.ReadFile(name, manifest.MaxSize)
	}
	doc := validateDoc{File: name, Notes: []string{}, Problems: []validateProblem{}}
	if err != nil {
		return manifestReadError(name, err)
	}
	m, err := manifest.Parse(name, data)
	if err != nil {
		if c.JSON {
			var e *manifest.Error
			if errors.As(err, &e) {
				for _, p := range e.Problems {
					doc.Problems = append(doc.Problems, validateProblem{Path: p.Path, Message: p.Message})
				}
				doc.More = e.More
			} else {
				doc.Problems = append(doc.Problems, validateProblem{Message: err.Error()})
			}
			if err := report.WriteJSON(a.stdout, doc); err != nil {
				return err
			}
			return quietExit(exitBadInput)
		}
		return fail(exitBadInput, "fix the fields above (the home-manager module's services.portclaim options render this file)", "%v", err)
	}
	doc.Valid, doc.Version, doc.Strategy, doc.Services, doc.Notes = true, m.Version, string(m.Strategy), len(m.Services), nonNil(m.Notes)
	for _, s := range m.Services {
		doc.Ports += len(s.Ports)
	}
	if c.JSON {
		return report.WriteJSON(a.stdout, doc)
	}
	fmt.Fprintf(a.stdout, "%s: valid (version %d, strategy %s, %d service%s, %d port%s)\n", name, m.Version, m.Strategy,
		doc.Services, plural(doc.Services), doc.Ports, plural(doc.Ports))
	for _, n := range m.Notes {
		a.notef("%s", n)
	}
	return nil
}

type versionCmd struct{}

func (versionCmd) Run(a *app) error {
	fmt.Fprintln(a.stdout, versionLine())
	return nil
}

// versionLine is the version the build stamped, or the module's.
func versionLine() string {
	v, rev := version, commit
	if v == "" {
		v = "devel"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	if rev != "" {
		v += " (" + rev + ")"
	}
	return fmt.Sprintf("portclaim %s; reads manifest versions %d to %d; broker protocol %d", v, manifest.OldestVersion, manifest.Version, broker.Version)
}
