// The parser: one pass over the manifest's JSON, every problem with its
// path, within the limits (manifest.go).
package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/jsonlimit"
	"github.com/portclaim/portclaim/pkg/unitname"
)

// Parse validates data and returns the manifest, or an *Error listing the
// problems. source names the input in messages.
func Parse(source string, data []byte) (Manifest, error) {
	p := &parser{}
	m := p.manifest(data)
	if len(p.problems) > 0 {
		return Manifest{}, &Error{Source: source, Problems: p.problems, More: p.more}
	}
	return m, nil
}

type parser struct {
	problems []Problem
	more     int
	version  int
	ports    int
}

func (p *parser) fail(path, format string, args ...any) {
	if len(p.problems) >= maxProblems {
		p.more++
		return
	}
	p.problems = append(p.problems, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (p *parser) manifest(data []byte) Manifest {
	m := Manifest{Strategy: DefaultStrategy, AutoResolve: true}
	if len(data) > MaxSize {
		p.fail("", "%d bytes is more than portclaim reads (%d); a manifest for dozens of services is a few kilobytes", len(data), MaxSize)
		return m
	}
	if err := jsonlimit.CheckDepth(data, MaxDepth); err != nil {
		p.fail("", "%v; a manifest nests 6", err)
		return m
	}
	if !gjson.ValidBytes(data) {
		p.fail("", "not valid JSON: %s", syntaxError(data))
		return m
	}
	root := gjson.ParseBytes(data)
	if !root.IsObject() {
		p.fail("", "the manifest must be a JSON object, not %s", kind(root))
		return m
	}
	p.keys("", root, "version", "strategy", "autoResolve", "strict", "services", "notes")

	switch v := root.Get("version"); {
	case !v.Exists():
		p.fail("version", "missing; this portclaim reads versions %d to %d", OldestVersion, Version)
	case v.Type != gjson.Number || !readsVersion(v.Raw):
		p.fail("version", "%s is not supported; this portclaim reads versions %d to %d (update portclaim, or the module that rendered this file)", v.Raw, OldestVersion, Version)
	default:
		m.Version = int(v.Int())
		p.version = m.Version
	}
	if v := root.Get("strategy"); v.Exists() {
		s := Strategy(v.String())
		if v.Type != gjson.String || !slices.Contains(strategies, s) {
			p.fail("strategy", "%s is not a strategy; use one of %s", v.Raw, joinStrategies())
		} else {
			m.Strategy = s
		}
	}
	m.AutoResolve = p.boolean(root, "autoResolve", true)
	m.Strict = p.boolean(root, "strict", false)
	m.Notes = p.notes(root.Get("notes"))

	services := root.Get("services")
	switch {
	case !services.Exists():
		p.fail("services", "missing; list the services whose ports you claim (may be empty: [])")
	case !services.IsArray():
		p.fail("services", "must be a list, not %s", kind(services))
	default:
		i := 0
		services.ForEach(func(_, s gjson.Result) bool {
			if i == MaxServices {
				p.fail("services", "more than %d services; portclaim reads at most %d", MaxServices, MaxServices)
				return false
			}
			m.Services = append(m.Services, p.service(fmt.Sprintf("services[%d]", i), s))
			i++
			return true
		})
	}
	p.duplicateServices(m.Services)
	p.crossServiceClaims(m.Services)
	return m
}

func (p *parser) boolean(obj gjson.Result, key string, def bool) bool {
	v := obj.Get(key)
	if !v.Exists() {
		return def
	}
	if !v.IsBool() {
		p.fail(key, "%s is not true or false", v.Raw)
		return def
	}
	return v.Bool()
}

func (p *parser) notes(v gjson.Result) []string {
	if !v.Exists() {
		return nil
	}
	if p.version == 1 {
		p.fail("notes", "is new in manifest version 2; this file says version 1")
		return nil
	}
	if !v.IsArray() {
		p.fail("notes", "must be a list of strings, not %s", kind(v))
		return nil
	}
	var out []string
	for i, n := range v.Array() {
		switch {
		case i == MaxNotes:
			p.fail("notes", "more than %d notes", MaxNotes)
			return out
		case n.Type != gjson.String || len(n.String()) > 1000 || host.Printable(n.String()) != n.String():
			p.fail(fmt.Sprintf("notes[%d]", i), "must be a string of at most 1000 printable bytes")
		default:
			out = append(out, n.String())
		}
	}
	return out
}

func (p *parser) service(path string, s gjson.Result) Service {
	var svc Service
	if !s.IsObject() {
		p.fail(path, "must be an object with name, systemUnits, userUnits and ports, not %s", kind(s))
		return svc
	}
	p.keys(path, s, "name", "systemUnits", "userUnits", "ports", "origin")
	name := s.Get("name")
	switch {
	case !name.Exists():
		p.fail(path+".name", "missing")
	case name.Type != gjson.String || !ValidName(name.String()):
		p.fail(path+".name", "%s is not a service name (letters, digits, '-', '_', '.')", name.Raw)
	default:
		svc.Name = name.String()
	}
	svc.SystemUnits = p.units(path+".systemUnits", s.Get("systemUnits"), false)
	svc.UserUnits = p.units(path+".userUnits", s.Get("userUnits"), true)
	svc.Origin = p.origin(path+".origin", s.Get("origin"))

	ports := s.Get("ports")
	switch {
	case !ports.Exists():
		p.fail(path+".ports", "missing; list at least one port")
	case !ports.IsArray():
		p.fail(path+".ports", "must be a list, not %s", kind(ports))
	case len(ports.Array()) == 0:
		p.fail(path+".ports", "is empty; list at least one port")
	default:
		idx := newOverlapIndex()
		pos := map[int]int{} // ports[i] -> its place in svc.Ports
		for i, pt := range ports.Array() {
			ppath := fmt.Sprintf("%s.ports[%d]", path, i)
			if p.ports++; p.ports > MaxPorts {
				p.fail(ppath, "more than %d ports in all services", MaxPorts)
				break
			}
			e, ok := p.port(ppath, pt)
			if !ok {
				continue
			}
			if j, clash := idx.add(e, i); clash {
				p.fail(ppath, "%s is listed twice (also %s.ports[%d], %s)", e, path, j, svc.Ports[pos[j]])
				continue
			}
			pos[i] = len(svc.Ports)
			svc.Ports = append(svc.Ports, e)
		}
	}
	return svc
}

func (p *parser) units(path string, v gjson.Result, required bool) []string {
	if !v.Exists() {
		if required {
			p.fail(path, "missing; name at least one unit, e.g. [\"podman-NAME.service\"]")
		}
		return nil
	}
	if !v.IsArray() {
		p.fail(path, "must be a list of unit names, not %s", kind(v))
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for i, u := range v.Array() {
		upath := fmt.Sprintf("%s[%d]", path, i)
		if u.Type != gjson.String {
			p.fail(upath, "%s is not a unit name", u.Raw)
			continue
		}
		if err := unitname.Validate(u.String()); err != nil {
			p.fail(upath, "%v", err)
			continue
		}
		if seen[u.String()] {
			p.fail(upath, "%s is listed twice", u.String())
			continue
		}
		seen[u.String()] = true
		out = append(out, u.String())
	}
	if required && len(out) == 0 && len(v.Array()) == 0 {
		p.fail(path, "is empty; name at least one unit")
	}
	return out
}

func (p *parser) origin(path string, v gjson.Result) Origin {
	var o Origin
	if !v.Exists() {
		return o
	}
	if p.version == 1 {
		p.fail(path, "is new in manifest version 2; this file says version 1")
		return o
	}
	if !v.IsObject() {
		p.fail(path, "must be an object, {\"podman\": {...}} or {\"homeManager\": {...}}, not %s", kind(v))
		return o
	}
	p.keys(path, v, "podman", "homeManager")
	pod, hm := v.Get("podman"), v.Get("homeManager")
	if pod.Exists() == hm.Exists() {
		p.fail(path, "must have exactly one of podman and homeManager")
		return o
	}
	if pod.Exists() {
		if !pod.IsObject() {
			p.fail(path+".podman", "must be an object {container, ports}, not %s", kind(pod))
			return o
		}
		p.keys(path+".podman", pod, "container", "ports")
		po := &PodmanOrigin{}
		if c := pod.Get("container"); c.Type != gjson.String || !ValidName(c.String()) {
			p.fail(path+".podman.container", "%s is not a container name", orMissing(c))
		} else {
			po.Container = c.String()
		}
		ports := pod.Get("ports")
		if !ports.IsArray() {
			p.fail(path+".podman.ports", "must be the container's list of port specs, not %s", kind(ports))
			return o
		}
		for i, s := range ports.Array() {
			spath := fmt.Sprintf("%s.podman.ports[%d]", path, i)
			if s.Type != gjson.String {
				p.fail(spath, "%s is not a port spec", s.Raw)
				continue
			}
			if _, err := ParsePodmanPort(s.String()); err != nil {
				p.fail(spath, "%v", err)
				continue
			}
			po.Ports = append(po.Ports, s.String())
		}
		o.Podman = po
		return o
	}
	if !hm.IsObject() {
		p.fail(path+".homeManager", "must be an object {option}, not %s", kind(hm))
		return o
	}
	p.keys(path+".homeManager", hm, "option")
	if opt := hm.Get("option"); opt.Type != gjson.String || !validOptionPath(opt.String()) {
		p.fail(path+".homeManager.option", "%s is not an option path such as \"services.ollama\"", orMissing(opt))
	} else {
		o.HomeManager = opt.String()
	}
	return o
}

func (p *parser) port(path string, v gjson.Result) (endpoint.Endpoint, bool) {
	e := endpoint.Endpoint{Proto: endpoint.TCP}
	if !v.IsObject() {
		p.fail(path, "must be an object {port, protocol, address}, not %s", kind(v))
		return e, false
	}
	p.keys(path, v, "port", "protocol", "address")
	ok := true
	switch n := v.Get("port"); {
	case !n.Exists():
		p.fail(path+".port", "missing")
		ok = false
	case n.Type != gjson.Number || strings.ContainsAny(n.Raw, ".eE") || n.Int() < 1 || n.Int() > 65535:
		p.fail(path+".port", "%s is not a port (a whole number from 1 to 65535)", n.Raw)
		ok = false
	default:
		e.Port = uint16(n.Int())
	}
	if proto := v.Get("protocol"); proto.Exists() {
		pr, err := endpoint.ParseProto(proto.String())
		if proto.Type != gjson.String || err != nil {
			p.fail(path+".protocol", "%s is not a protocol; use \"tcp\" or \"udp\"", proto.Raw)
			ok = false
		}
		e.Proto = pr
	}
	if a := v.Get("address"); a.Exists() {
		addr, err := endpoint.ParseAddress(a.String())
		switch {
		case a.Type != gjson.String:
			p.fail(path+".address", "%s is not an IP address; use \"\" for all addresses, or e.g. \"127.0.0.1\" or \"::1\"", a.Raw)
			ok = false
		case err != nil:
			p.fail(path+".address", "%v", err)
			ok = false
		}
		e.Addr = addr
	}
	return e, ok
}

func (p *parser) duplicateServices(svcs []Service) {
	first := map[string]int{}
	for i, s := range svcs {
		if s.Name == "" {
			continue
		}
		if j, dup := first[s.Name]; dup {
			p.fail(fmt.Sprintf("services[%d].name", i), "%q is already the name of services[%d]", s.Name, j)
			continue
		}
		first[s.Name] = i
	}
}

// crossServiceClaims finds one port claimed by two services: portclaim
// could not tell which user unit should get it. The index makes it linear
// in the number of ports, whatever their addresses.
func (p *parser) crossServiceClaims(svcs []Service) {
	idx := newOverlapIndex()
	owner := map[int]int{} // index id -> service
	id := 0
	for i, s := range svcs {
		for _, e := range s.Ports {
			if j, clash := idx.add(e, id); clash {
				other := owner[j]
				p.fail(fmt.Sprintf("services[%d].ports", i), "%s is also claimed by service %q (services[%d]); one port can belong to one service",
					claimName(e), svcs[other].Name, other)
			}
			owner[id] = i
			id++
		}
	}
}

// claimName writes a claim as the README does: "11434/tcp" on every
// address, "127.0.0.1:11434/tcp" on one.
func claimName(e endpoint.Endpoint) string {
	if e.All() {
		return e.PortProto()
	}
	return e.String() + "/" + string(e.Proto)
}

// keys reports fields the object may not have, and fields it has twice:
// a reader that takes the first of two "port" keys and a person who reads
// the last would disagree about what is claimed.
func (p *parser) keys(path string, obj gjson.Result, known ...string) {
	seen := make(map[string]bool, len(known))
	obj.ForEach(func(k, _ gjson.Result) bool {
		name := k.String()
		kp := name
		if path != "" {
			kp = path + "." + name
		}
		switch {
		case seen[name]:
			p.fail(kp, "is given twice in one object; give it once")
		case !slices.Contains(known, name):
			p.fail(kp, "unknown field (known: %s)", strings.Join(known, ", "))
		}
		seen[name] = true
		return true
	})
}

// readsVersion reports whether raw, a JSON number, is written as a
// version this build reads ("2", not "2.0" or "2e0").
func readsVersion(raw string) bool {
	for v := OldestVersion; v <= Version; v++ {
		if raw == strconv.Itoa(v) {
			return true
		}
	}
	return false
}

func orMissing(v gjson.Result) string {
	if !v.Exists() {
		return "missing"
	}
	return v.Raw
}

func joinStrategies() string {
	var names []string
	for _, s := range strategies {
		names = append(names, string(s))
	}
	return strings.Join(names, ", ")
}

func kind(v gjson.Result) string {
	switch {
	case v.IsObject():
		return "an object"
	case v.IsArray():
		return "a list"
	case v.Type == gjson.String:
		return "a string"
	case v.Type == gjson.Number:
		return "a number"
	case v.IsBool():
		return "a boolean"
	case v.Type == gjson.Null:
		return "null"
	}
	return "empty"
}

// syntaxError locates the first JSON syntax error for the message; gjson
// only says "invalid", encoding/json says where.
func syntaxError(data []byte) string {
	var v any
	err := json.Unmarshal(data, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := 1, 1
		for _, c := range data[:min(int(se.Offset), len(data))] {
			if c == '\n' {
				line, col = line+1, 1
			} else {
				col++
			}
		}
		return fmt.Sprintf("%v (line %d, column %d)", se, line, col)
	}
	if err != nil {
		return err.Error()
	}
	return "unexpected input"
}
