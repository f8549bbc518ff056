package manifest

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/portclaim/portclaim/pkg/endpoint"
)

// PodmanPort is one entry of a podman container's ports:
// [[ip:][hostPort]:]containerPort[/protocol] (podman-run(1) --publish),
// with port ranges. The Go twin of parsePortSpec in nix/lib.nix, which
// derives the claims; this one rewrites an entry to move it.
type PodmanPort struct {
	Address   string // "" for every address
	Host      portRange
	Container portRange
	Protocol  string // tcp, udp, sctp
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
	p := PodmanPort{Protocol: "tcp"}
	body := spec
	if i := strings.LastIndexByte(spec, '/'); i >= 0 {
		body, p.Protocol = spec[:i], spec[i+1:]
		if p.Protocol != "tcp" && p.Protocol != "udp" && p.Protocol != "sctp" {
			return bad("protocol " + p.Protocol)
		}
	}
	var host, container string
	if rest, ok := strings.CutPrefix(body, "["); ok {
		// [ipv6]:hostPort:containerPort
		addr, ports, ok := strings.Cut(rest, "]:")
		h, c, ok2 := strings.Cut(ports, ":")
		if !ok || !ok2 || strings.Contains(c, ":") {
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

// HostEndpoints are the host ports the entry binds (none when podman
// picks, or for sctp, which portclaim does not check).
func (p PodmanPort) HostEndpoints() []endpoint.Endpoint {
	if p.Host.First == 0 || p.Protocol == "sctp" {
		return nil
	}
	addr, _ := endpoint.ParseAddress(p.Address)
	var out []endpoint.Endpoint
	for port := p.Host.First; port <= p.Host.Last; port++ {
		out = append(out, endpoint.Endpoint{Proto: endpoint.Proto(p.Protocol), Addr: addr, Port: uint16(port)})
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
	if p.Protocol != "tcp" {
		b.WriteString("/" + p.Protocol)
	}
	return b.String()
}

// MovePodmanPort returns specs with the entry that binds from moved to
// host port to, keeping its container port, address and protocol; a
// range is written out port by port around the moved one. ok is false
// when no entry binds from, or its ranges do not pair up.
func MovePodmanPort(specs []string, from endpoint.Endpoint, to uint16) (out []string, ok bool) {
	for i, s := range specs {
		p, err := ParsePodmanPort(s)
		if err != nil || p.Protocol != string(from.Proto) || p.Host.First == 0 ||
			int(from.Port) < p.Host.First || int(from.Port) > p.Host.Last {
			continue
		}
		addr, _ := endpoint.ParseAddress(p.Address)
		if addr != from.Addr {
			continue
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
