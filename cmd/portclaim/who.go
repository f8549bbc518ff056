package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/portclaim/portclaim/pkg/attribute"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/holder"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/report"
)

type whoCmd struct {
	Port       string `arg:"" help:"PORT, PORT/tcp or PORT/udp."`
	Manifest   string `help:"Manifest whose units are expected on the port (default: yours, else the built-in map)." placeholder:"FILE" type:"path"`
	formatFlag `embed:""`
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
	held, err := attribute.Who(port, proto, expected, a.places)
	if err != nil {
		return fail(exitEnv, "", "%v", err)
	}
	doc := report.WhoDoc{Port: port, Protocol: string(proto), Sockets: []report.WhoSocket{}}
	for _, h := range held {
		doc.Sockets = append(doc.Sockets, report.WhoSocket{Protocol: string(h.Socket.Proto), Address: h.Socket.Endpoint.String(),
			Says: report.Who(h.Holder, a.names.Of), Holder: report.HolderDoc(a.managerOf(h.Holder.Unit), h.Holder.Unit.Name, h.Holder)})
	}
	code := exitOK
	if len(held) == 0 {
		code = exitConflicts // as fuser and lsof: 1 when nothing is found
	}
	return renderThen(a.stdout, c.asJSON(), doc, func(w io.Writer) { report.WhoText(w, c.Port, doc) }, code)
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
