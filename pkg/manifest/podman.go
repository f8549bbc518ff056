package manifest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/portclaim/portclaim/pkg/endpoint"
)

// PodmanPort is one entry of a podman container's ports:
// [[ip:][hostPort]:]containerPort[/protocol] (podman-run(1) --publish),
// with port ranges. The Go twin of parsePortSpec in nix/lib/podman.nix, which
// derives the claims; this one rewrites an entry to move it. Both are
// held to testdata/port-specs.json.
type PodmanPort struct {
	Address   string // "" for every address
	Host      portRange
	Container portRange
	// Protocols are tcp, udp, sctp, each once, in that order. podman
	// reads the protocol case-insensitively as a comma-separated list,
	// an empty one as tcp ("53:53/TCP,udp").
	Protocols []string
}

type portRange struct{ First, Last int } // 0, 0: none (podman picks)

const maxSpecSz = 128

// ParsePodmanPort reads one port spec.
func ParsePodmanPort(spec string) (PodmanPort, error) {
	bad := func(why string) (PodmanPort, error) {
		return PodmanPort{}, fmt.Errorf("%q is not a podman port spec ([[ip:][hostPort]:]containerPort[/protocol]): %s", spec, why)
	}
	if len(spec) > maxSpecSz {
		return bad("too long")
	}
	p := PodmanPort{Protocols: []string{"tcp"}}
	body := spec
	if i := strings.LastIndexByte(spec, '/'); i >= 0 {
		body = spec[:i]
		var ok bool
		if p.Protocols, ok = protocols(spec[i+1:]); !ok {
			return bad("protocol " + spec[i+1:])
		}
	}
	var host, container string
	if rest, ok := strings.CutPrefix(body, "["); ok {
		// [ipv6]:hostPort:containerPort
		addr, ports, ok := strings.Cut(rest, "]:")
		h, c, ok2 := strings.Cut(ports, ":")
		if !ok || !ok2 || addr == "" || strings.Contains(c, ":") {
			return bad("want [address]:hostPort:containerPort")
		}
		p.Address, host, container = addr, h, c
	} else {
		parts := strings.Split(body, ":")
		switch len(parts) {
		case 1:
			container = parts[0]
		case 2:
			host, container = parts[0], parts[1]
		case 3:
			p.Address, host, container = parts[0], parts[1], parts[2]
		default:
			return bad("too many ':'")
		}
	}
	if p.Address != "" {
		if _, err := endpoint.ParseAddress(p.Address); err != nil {
			return bad("address " + p.Address)
		}
	}
	var err error
	if p.Container, err = parseRange(container); err != nil || p.Container.First == 0 {
		return bad("container port")
	}
	if host != "" {
		if p.Host, err = parseRange(host); err != nil {
			return bad("host port")
		}
	}
	return p, nil
}

// protocols reads podman's protocol list: tcp, udp or sctp in any case,
// comma-separated, an empty item meaning tcp.
func protocols(list string) ([]string, bool) {
	seen := map[string]bool{}
	for _, p := range strings.Split(strings.ToLower(list), ",") {
		switch p {
		case "":
			seen["tcp"] = true
		case "tcp", "udp", "sctp":
			seen[p] = true
		default:
			return nil, false
		}
	}
	var out []string
	for _, p := range []string{"tcp", "udp", "sctp"} {
		if seen[p] {
			out = append(out, p)
		}
	}
	return out, true
}

func parseRange(s string) (portRange, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	first, err := decimal(lo)
	if err != nil {
		return portRange{}, err
	}
	last := first
	if isRange {
		if last, err = decimal(hi); err != nil {
			return portRange{}, err
		}
	}
	if first < 1 || last > 65535 || last < first {
		return portRange{}, fmt.Errorf("out of range")
	}
	return portRange{first, last}, nil
}

// decimal reads a port number: digits only (no sign, no space).
func decimal(s string) (int, error) {
	if s == "" || len(s) > 5 || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("not a port or range")
	}
	return strconv.Atoi(s)
}

// HostEndpoints are the host ports the entry binds, port by port, tcp
// before udp (none when podman picks, or for sctp, which portclaim does
// not check).
func (p PodmanPort) HostEndpoints() []endpoint.Endpoint {
	if p.Host.First == 0 {
		return nil
	}
	addr, _ := endpoint.ParseAddress(p.Address)
	var out []endpoint.Endpoint
	for port := p.Host.First; port <= p.Host.Last; port++ {
		for _, proto := range p.Protocols {
			if proto != "sctp" {
				out = append(out, endpoint.Endpoint{Proto: endpoint.Proto(proto), Addr: addr, Port: uint16(port)})
			}
		}
	}
	return out
}

// format writes one host:container mapping in this entry's address and
// protocol.
func (p PodmanPort) format(host, container int) string {
	var b strings.Builder
	switch {
	case p.Address == "":
	case strings.Contains(p.Address, ":"):
		b.WriteString("[" + p.Address + "]:")
	default:
		b.WriteString(p.Address + ":")
	}
	fmt.Fprintf(&b, "%d:%d", host, container)
	if proto := strings.Join(p.Protocols, ","); proto != "tcp" {
		b.WriteString("/" + proto)
	}
	return b.String()
}

// MovePodmanPort returns specs with the entry that binds from moved to
// host port to, keeping its container port, address and protocol; a
// range is written out port by port around the moved one. ok is false
// when no entry binds from, its ranges do not pair up, or it publishes
// more than one protocol (moving one would move the others).
func MovePodmanPort(specs []string, from endpoint.Endpoint, to uint16) (out []string, ok bool) {
	for i, s := range specs {
		p, err := ParsePodmanPort(s)
		if err != nil || !slices.Contains(p.Protocols, string(from.Proto)) || p.Host.First == 0 ||
			int(from.Port) < p.Host.First || int(from.Port) > p.Host.Last {
			continue
		}
		addr, _ := endpoint.ParseAddress(p.Address)
		if addr != from.Addr {
			continue
		}
		if len(p.Protocols) > 1 {
			return nil, false
		}
		n := p.Host.Last - p.Host.First
		if p.Container.Last-p.Container.First != n {
			return nil, false
		}
		var moved []string
		for k := 0; k <= n; k++ {
			host := p.Host.First + k
			if host == int(from.Port) {
				host = int(to)
			}
			moved = append(moved, p.format(host, p.Container.First+k))
		}
		out = append(append(append(out, specs[:i]...), moved...), specs[i+1:]...)
		return out, true
	}
	return nil, false
}
