// Package manifest reads and validates the user's service-to-port map
// (manifest version 1, see DESIGN.md "Manifest contract"). Validation is
// complete: every problem is reported with its JSON path, so one run of
// `portclaim validate` tells the user everything to fix.
//
// Keep in sync with the renderer in module.nix.
package manifest

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/unitname"
)

// Version is the manifest contract this build reads.
const Version = 1

// Strategy says who wins a conflict.
type Strategy string

const (
	DisableSystem Strategy = "disable-system" // the user's service wins (default)
	DisableUser   Strategy = "disable-user"   // the system service wins
	Report        Strategy = "report"         // change nothing
)

var strategies = []Strategy{DisableSystem, DisableUser, Report}

// Manifest is a validated manifest.
type Manifest struct {
	Version     int
	Strategy    Strategy
	AutoResolve bool
	Strict      bool
	Services    []Service
}

// Service pairs the system units and user units that want the same ports.
type Service struct {
	Name        string
	SystemUnits []string
	UserUnits   []string
	Ports       []endpoint.Endpoint
}

// Problem is one thing wrong with a manifest, at a JSON path such as
// "services[1].ports[0].port".
type Problem struct {
	Path    string
	Message string
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// Error lists every problem found in one manifest.
type Error struct {
	Source   string // file name, or "built-in default"
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "manifest %s is invalid (%d problem", e.Source, len(e.Problems))
	if len(e.Problems) != 1 {
		b.WriteString("s")
	}
	b.WriteString("):")
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

//go:embed default.json
var defaultJSON []byte

// DefaultJSON is the built-in service map used when no --manifest is given.
func DefaultJSON() []byte { return defaultJSON }

// Default returns the built-in service map, parsed.
func Default() Manifest {
	m, err := Parse("built-in default", defaultJSON)
	if err != nil {
		panic(err) // a test keeps default.json valid
	}
	return m
}

var serviceNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// Parse validates data and returns the manifest, or an *Error listing every
// problem. source names the input in messages.
func Parse(source string, data []byte) (Manifest, error) {
	p := &parser{}
	m := p.manifest(data)
	if len(p.problems) > 0 {
		return Manifest{}, &Error{Source: source, Problems: p.problems}
	}
	return m, nil
}

type parser struct{ problems []Problem }

func (p *parser) fail(path, format string, args ...any) {
	p.problems = append(p.problems, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (p *parser) manifest(data []byte) Manifest {
	m := Manifest{Strategy: DisableSystem, AutoResolve: true}
	if !gjson.ValidBytes(data) {
		p.fail("", "not valid JSON: %s", syntaxError(data))
		return m
	}
	root := gjson.ParseBytes(data)
	if !root.IsObject() {
		p.fail("", "the manifest must be a JSON object, not %s", kind(root))
		return m
	}
	p.unknownKeys("", root, "version", "strategy", "autoResolve", "strict", "services")

	switch v := root.Get("version"); {
	case !v.Exists():
		p.fail("version", "missing; this portclaim reads version %d", Version)
	case v.Type != gjson.Number || v.Raw != fmt.Sprint(Version):
		p.fail("version", "%s is not supported; this portclaim reads version %d (update portclaim or the module that rendered this file)", v.Raw, Version)
	default:
		m.Version = Version
	}
	if v := root.Get("strategy"); v.Exists() {
		s := Strategy(v.String())
		if v.Type != gjson.String || !validStrategy(s) {
			p.fail("strategy", "%s is not a strategy; use one of %s", v.Raw, joinStrategies())
		} else {
			m.Strategy = s
		}
	}
	m.AutoResolve = p.boolean(root, "autoResolve", true)
	m.Strict = p.boolean(root, "strict", false)

	services := root.Get("services")
	switch {
	case !services.Exists():
		p.fail("services", "missing; list the services whose ports you claim (may be empty: [])")
	case !services.IsArray():
		p.fail("services", "must be a list, not %s", kind(services))
	default:
		for i, s := range services.Array() {
			m.Services = append(m.Services, p.service(fmt.Sprintf("services[%d]", i), s))
		}
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

func (p *parser) service(path string, s gjson.Result) Service {
	var svc Service
	if !s.IsObject() {
		p.fail(path, "must be an object with name, systemUnits, userUnits and ports, not %s", kind(s))
		return svc
	}
	p.unknownKeys(path, s, "name", "systemUnits", "userUnits", "ports")
	name := s.Get("name")
	switch {
	case !name.Exists():
		p.fail(path+".name", "missing")
	case name.Type != gjson.String || !serviceNameRE.MatchString(name.String()):
		p.fail(path+".name", "%s is not a service name (letters, digits, '-', '_', '.')", name.Raw)
	default:
		svc.Name = name.String()
	}
	svc.SystemUnits = p.units(path+".systemUnits", s.Get("systemUnits"), false)
	svc.UserUnits = p.units(path+".userUnits", s.Get("userUnits"), true)

	ports := s.Get("ports")
	switch {
	case !ports.Exists():
		p.fail(path+".ports", "missing; list at least one port")
	case !ports.IsArray():
		p.fail(path+".ports", "must be a list, not %s", kind(ports))
	case len(ports.Array()) == 0:
		p.fail(path+".ports", "is empty; list at least one port")
	default:
		for i, pt := range ports.Array() {
			ppath := fmt.Sprintf("%s.ports[%d]", path, i)
			e, ok := p.port(ppath, pt)
			if !ok {
				continue
			}
			for j, prev := range svc.Ports {
				if endpoint.Overlap(prev, e) {
					p.fail(ppath, "%s is listed twice (also %s.ports[%d], %s)", e, path, j, prev)
					ok = false
					break
				}
			}
			if ok {
				svc.Ports = append(svc.Ports, e)
			}
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

func (p *parser) port(path string, v gjson.Result) (endpoint.Endpoint, bool) {
	e := endpoint.Endpoint{Proto: endpoint.TCP}
	if !v.IsObject() {
		p.fail(path, "must be an object {port, protocol, address}, not %s", kind(v))
		return e, false
	}
	p.unknownKeys(path, v, "port", "protocol", "address")
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
		if pr := endpoint.Proto(proto.String()); proto.Type == gjson.String && (pr == endpoint.TCP || pr == endpoint.UDP) {
			e.Proto = pr
		} else {
			p.fail(path+".protocol", "%s is not a protocol; use \"tcp\" or \"udp\"", proto.Raw)
			ok = false
		}
	}
	if a := v.Get("address"); a.Exists() && !(a.Type == gjson.String && a.String() == "") {
		addr, err := netip.ParseAddr(a.String())
		if a.Type != gjson.String || err != nil {
			p.fail(path+".address", "%s is not an IP address; use \"\" for all addresses, or e.g. \"127.0.0.1\" or \"::1\"", a.Raw)
			ok = false
		} else {
			e.Addr = addr
		}
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

// crossServiceClaims finds one port claimed by two services: portclaim could
// not tell which user unit should get it.
func (p *parser) crossServiceClaims(svcs []Service) {
	for i := range svcs {
		for j := i + 1; j < len(svcs); j++ {
			for _, a := range svcs[i].Ports {
				for _, b := range svcs[j].Ports {
					if endpoint.Overlap(a, b) {
						p.fail(fmt.Sprintf("services[%d].ports", j), "%s/%s is also claimed by service %q (services[%d]); one port can belong to one service",
							portString(b), b.Proto, svcs[i].Name, i)
					}
				}
			}
		}
	}
}

func portString(e endpoint.Endpoint) string {
	if e.All() {
		return fmt.Sprint(e.Port)
	}
	return e.String()
}

func (p *parser) unknownKeys(path string, obj gjson.Result, known ...string) {
	var unknown []string
	obj.ForEach(func(k, _ gjson.Result) bool {
		for _, want := range known {
			if k.String() == want {
				return true
			}
		}
		unknown = append(unknown, k.String())
		return true
	})
	sort.Strings(unknown)
	for _, k := range unknown {
		kp := k
		if path != "" {
			kp = path + "." + k
		}
		p.fail(kp, "unknown field (known: %s)", strings.Join(known, ", "))
	}
}

func validStrategy(s Strategy) bool {
	for _, v := range strategies {
		if s == v {
			return true
		}
	}
	return false
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
