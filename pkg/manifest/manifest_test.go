package manifest

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/portclaim/portclaim/pkg/endpoint"
)

func TestDefaultIsValid(t *testing.T) {
	m := Default()
	// llama-cpp and open-webui both listen on 8080 by default: one claim.
	want := map[string][]uint16{"ollama": {11434}, "qdrant": {6333, 6334}, "llama-cpp-or-open-webui": {8080}, "mindsdb": {47334}}
	if len(m.Services) != len(want) {
		t.Fatalf("default map has %d services, want %d", len(m.Services), len(want))
	}
	for _, s := range m.Services {
		ports := want[s.Name]
		if len(s.Ports) != len(ports) {
			t.Fatalf("%s: %d ports, want %v", s.Name, len(s.Ports), ports)
		}
		for i, p := range s.Ports {
			if p.Port != ports[i] || p.Proto != "tcp" || !p.All() {
				t.Errorf("%s: port %v, want %d/tcp on all addresses", s.Name, p, ports[i])
			}
		}
		for i, name := range strings.Split(s.Name, "-or-") {
			if s.SystemUnits[i] != name+".service" || s.Origin.Podman != nil || s.UserUnits[i] != "podman-local-ai-"+name+".service" {
				t.Errorf("%s: units %v / %v do not follow the naming pattern", s.Name, s.SystemUnits, s.UserUnits)
			}
		}
	}
	if m.Strategy != DisableSystem || !m.AutoResolve || m.Strict {
		t.Errorf("default settings %+v", m)
	}
	// The built-in map is what a manifest would say: its names and ports
	// pass the manifest's own validation, and read back the same.
	type service struct {
		Name        string              `json:"name"`
		SystemUnits []string            `json:"systemUnits"`
		UserUnits   []string            `json:"userUnits"`
		Ports       []endpoint.Endpoint `json:"ports"`
	}
	doc := struct {
		Version     int       `json:"version"`
		Strategy    Strategy  `json:"strategy"`
		AutoResolve bool      `json:"autoResolve"`
		Services    []service `json:"services"`
	}{Version: m.Version, Strategy: m.Strategy, AutoResolve: m.AutoResolve}
	for _, s := range m.Services {
		doc.Services = append(doc.Services, service{s.Name, s.SystemUnits, s.UserUnits, s.Ports})
	}
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse("the built-in map", data)
	if err != nil {
		t.Fatalf("the built-in map does not validate: %v\n%s", err, data)
	}
	if !reflect.DeepEqual(back, m) {
		t.Errorf("the built-in map reads back as\n%+v\nwant\n%+v", back, m)
	}
}

// Known services that share a port, directly or through another, are one
// claim in the built-in map, in the place of the first.
func TestSharedPortsAreOneClaim(t *testing.T) {
	ks := mustKnown([]byte(`{"services": {
  "a": {"systemUnits": ["a.service"], "ports": [1, 2]},
  "b": {"systemUnits": ["b.service"], "ports": [3]},
  "c": {"systemUnits": ["c.service"], "ports": [4]},
  "d": {"systemUnits": ["d.service"], "ports": [2, 3]},
  "e": {"systemUnits": ["e.service"], "ports": [4]}}}`))
	var got []string
	for _, g := range sharingPorts(ks) {
		var names []string
		for _, k := range g {
			names = append(names, k.Name)
		}
		got = append(got, strings.Join(names, "+"))
	}
	if strings.Join(got, " ") != "a+b+d c+e" {
		t.Errorf("groups %v, want a+b+d c+e", got)
	}
}

func TestDefaultsForOptionalFields(t *testing.T) {
	m, err := Parse("t", []byte(`{"version":1,"services":[{"name":"x","userUnits":["x.service"],"ports":[{"port":53,"protocol":"udp","address":"::1"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if m.Strategy != DisableSystem || !m.AutoResolve || m.Strict {
		t.Errorf("defaults not applied: %+v", m)
	}
	p := m.Services[0].Ports[0]
	if p.Proto != "udp" || p.Addr.String() != "::1" || p.Port != 53 {
		t.Errorf("port parsed as %+v", p)
	}
}

// problems parses input and returns every problem's "path: message".
func problems(t *testing.T, input string) []string {
	t.Helper()
	_, err := Parse("test.json", []byte(input))
	var merr *Error
	if !errors.As(err, &merr) {
		t.Fatalf("Parse(%s) error = %v, want *Error", input, err)
	}
	var out []string
	for _, p := range merr.Problems {
		out = append(out, p.String())
	}
	return out
}

func TestProblemsNameTheirPath(t *testing.T) {
	cases := []struct {
		name, input string
		want        []string // each a prefix of one problem, in order
	}{
		{"not JSON", `{"version": 1,`, []string{"not valid JSON"}},
		{"not an object", `[1]`, []string{"the manifest must be a JSON object"}},
		{"bad version", `{"version":3,"services":[]}`, []string{"version: 3 is not supported"}},
		{"missing version", `{"services":[]}`, []string{"version: missing"}},
		{"bad strategy", `{"version":1,"strategy":"mask","services":[]}`, []string{`strategy: "mask" is not a strategy`}},
		{"unknown field", `{"version":1,"services":[],"extra":1}`, []string{"extra: unknown field"}},
		{"port 70000", `{"version":1,"services":[{"name":"a","userUnits":["a.service"],"ports":[{"port":70000}]}]}`,
			[]string{"services[0].ports[0].port: 70000 is not a port"}},
		{"port 0 and fraction", `{"version":1,"services":[{"name":"a","userUnits":["a.service"],"ports":[{"port":0},{"port":80.5}]}]}`,
			[]string{"services[0].ports[0].port: 0 is not a port", "services[0].ports[1].port: 80.5 is not a port"}},
		{"bad unit name", `{"version":1,"services":[{"name":"a","systemUnits":["../x.service"],"userUnits":["a"],"ports":[{"port":1}]}]}`,
			[]string{`services[0].systemUnits[0]: unit name "../x.service" contains "/"`, `services[0].userUnits[0]: unit name "a" has no type suffix`}},
		{"bad protocol and address", `{"version":1,"services":[{"name":"a","userUnits":["a.service"],"ports":[{"port":1,"protocol":"sctp","address":"localhost"}]}]}`,
			[]string{`services[0].ports[0].protocol: "sctp" is not a protocol`, `services[0].ports[0].address: "localhost" is not an IP address`}},
		{"port listed twice", `{"version":1,"services":[{"name":"a","userUnits":["a.service"],"ports":[{"port":1},{"port":1,"address":"127.0.0.1"}]}]}`,
			[]string{"services[0].ports[1]: 127.0.0.1:1 is listed twice"}},
		{"port claimed by two services", `{"version":1,"services":[
			{"name":"a","userUnits":["a.service"],"ports":[{"port":6333}]},
			{"name":"b","userUnits":["b.service"],"ports":[{"port":6333}]}]}`,
			[]string{`services[1].ports: 6333/tcp is also claimed by service "a"`}},
		{"missing pieces", `{"version":1,"services":[{}]}`,
			[]string{"services[0].name: missing", "services[0].userUnits: missing", "services[0].ports: missing"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := problems(t, c.input)
			if len(got) != len(c.want) {
				t.Fatalf("got %d problems %q, want %d like %q", len(got), got, len(c.want), c.want)
			}
			for i := range c.want {
				if !strings.HasPrefix(got[i], c.want[i]) {
					t.Errorf("problem %d = %q, want prefix %q", i, got[i], c.want[i])
				}
			}
		})
	}
}

func TestNonOverlappingAddressesMayShareAPort(t *testing.T) {
	_, err := Parse("t", []byte(`{"version":1,"services":[
		{"name":"a","userUnits":["a.service"],"ports":[{"port":80,"address":"127.0.0.2"}]},
		{"name":"b","userUnits":["b.service"],"ports":[{"port":80,"address":"127.0.0.3"},{"port":80,"protocol":"udp"}]}]}`))
	if err != nil {
		t.Fatalf("127.0.0.2:80 and 127.0.0.3:80 (and udp) do not collide, got %v", err)
	}
}

func TestErrorListsEveryProblem(t *testing.T) {
	_, err := Parse("bad.json", []byte(`{"version":3,"strategy":1,"services":[{"name":"a","userUnits":["a.service"],"ports":[{"port":-1}]}]}`))
	msg := err.Error()
	for _, want := range []string{"manifest bad.json is invalid (3 problems)", "version: 3", "strategy: 1", "services[0].ports[0].port: -1"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"version":2,"services":[{"name":"o","userUnits":["p.service"],"ports":[{"port":1}],"origin":{"podman":{"container":"c","ports":["1:2"]}}}],"notes":["n"]}`))
	f.Add([]byte(`{"version":1,"services":[{"name":"a","userUnits":["a.service"],"ports":[{"port":1,"protocol":"udp","address":"::"}]}]}`))
	f.Add([]byte(`{"version":1,"services":[{"name":"a","userUnits":["a@.service"],"ports":[{"port":1e3}]}]}`))
	f.Add([]byte(`{"version":1,"services":{}}`))
	f.Add([]byte(`[`))
	f.Add([]byte("\xff\xfe"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse("fuzz", data)
		if err != nil {
			var merr *Error
			if !errors.As(err, &merr) || len(merr.Problems) == 0 {
				t.Fatalf("error %v is not an *Error with problems", err)
			}
			return
		}
		// A manifest that passes must hold only what the rest of portclaim trusts.
		if m.Version < 1 || m.Version > Version {
			t.Fatalf("accepted version %d", m.Version)
		}
		for _, s := range m.Services {
			if len(s.UserUnits) == 0 || len(s.Ports) == 0 {
				t.Fatalf("accepted service without units or ports: %+v", s)
			}
			for _, u := range append(append([]string{}, s.SystemUnits...), s.UserUnits...) {
				if strings.ContainsAny(u, "/ \t\n\x00") {
					t.Fatalf("accepted unit name %q", u)
				}
			}
			for _, p := range s.Ports {
				if p.Port == 0 || (p.Proto != "tcp" && p.Proto != "udp") {
					t.Fatalf("accepted port %+v", p)
				}
			}
		}
	})
}
