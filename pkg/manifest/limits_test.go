package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portclaim/portclaim/pkg/endpoint"
)

// parseQuickly parses data and fails the test if that takes longer than
// a person would wait: the limits exist so that no input is slow.
func parseQuickly(t *testing.T, data []byte) error {
	t.Helper()
	start := time.Now()
	_, err := Parse("hostile.json", data)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s", d)
	}
	return err
}

func TestHostileInputEndsQuicklyWithAClearError(t *testing.T) {
	service := func(i int) string {
		return fmt.Sprintf(`{"name":"s%d","userUnits":["u%d.service"],"ports":[{"port":6333}]}`, i, i)
	}
	many := func(n int) []byte {
		var b bytes.Buffer
		b.WriteString(`{"version":2,"services":[`)
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(service(i))
		}
		b.WriteString(`]}`)
		return b.Bytes()
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"10 MB of [", bytes.Repeat([]byte("["), 10<<20), "bytes is more than portclaim reads"},
		{"nested 1000 deep", append(bytes.Repeat([]byte("["), 1000), bytes.Repeat([]byte("]"), 1000)...), "nested more than 8 levels"},
		{"brackets in strings do not count", []byte(`{"version":2,"services":[],"notes":["[[[[[[[[[[[[[[[["]}`), ""},
		{"100,000 services", many(100000), "bytes is more than portclaim reads"},
		{"2,000 services", many(2000), "more than 1024 services"},
		{"1,024 services on one port", many(1024), `6333/tcp is also claimed by service "s0"`},
		{"duplicate key", []byte(`{"version":2,"services":[{"name":"a","userUnits":["a.service"],"ports":[{"port":1,"port":70000}]}]}`),
			"services[0].ports[0].port: is given twice in one object"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := parseQuickly(t, c.data)
			if c.want == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			var e *Error
			if errors.As(err, &e) && len(e.Problems) > maxProblems {
				t.Errorf("%d problems listed; the list is bounded at %d", len(e.Problems), maxProblems)
			}
		})
	}
}

func TestTooManyProblemsAreCounted(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"version":2,"services":[`)
	for i := 0; i < 200; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"name":"s%d","userUnits":["u.service"],"ports":[{"port":0}]}`, i)
	}
	b.WriteString(`]}`)
	err := parseQuickly(t, []byte(b.String())).(*Error)
	if len(err.Problems) != maxProblems || err.More != 200-maxProblems ||
		!strings.Contains(err.Error(), "(200 problems)") || !strings.Contains(err.Error(), "... and 150 more") {
		t.Fatalf("%d listed, %d more:\n%v", len(err.Problems), err.More, err)
	}
}

// TestOverlapIndexAgreesWithOverlap checks the index against the pairwise
// rule on random claims: the index finds a clash exactly when some
// earlier endpoint overlaps.
func TestOverlapIndexAgreesWithOverlap(t *testing.T) {
	addrs := []string{"", "0.0.0.0", "::", "127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1", "fe80::1", "10.0.0.1"}
	r := rand.New(rand.NewSource(1))
	for round := 0; round < 2000; round++ {
		idx := newOverlapIndex()
		var seen []endpoint.Endpoint
		for i := 0; i < 6; i++ {
			e := endpoint.Endpoint{Proto: []endpoint.Proto{endpoint.TCP, endpoint.UDP}[r.Intn(2)], Port: uint16(80 + r.Intn(2))}
			if a := addrs[r.Intn(len(addrs))]; a != "" {
				e.Addr = netip.MustParseAddr(a)
			}
			want := -1
			for j, s := range seen {
				if endpoint.Overlap(s, e) {
					want = j
					break
				}
			}
			got, clash := idx.add(e, i)
			if clash != (want >= 0) || clash && !endpoint.Overlap(seen[got], e) {
				t.Fatalf("round %d: %v after %v: index says %d (%v), pairwise %d", round, e, seen, got, clash, want)
			}
			seen = append(seen, e)
		}
	}
}

func TestVersion2Origins(t *testing.T) {
	m, err := Parse("t", []byte(`{"version":2,"services":[
		{"name":"ollama","systemUnits":["ollama.service"],"userUnits":["podman-local-ai-ollama.service"],"ports":[{"port":11434}],
		 "origin":{"podman":{"container":"local-ai-ollama","ports":["11434:11434","127.0.0.1:9000:9000/udp"]}}},
		{"name":"hm","systemUnits":["ollama.service"],"userUnits":["ollama.service"],"ports":[{"port":11435,"address":"127.0.0.1"}],
		 "origin":{"homeManager":{"option":"services.ollama"}}}],
		"notes":["container searx uses the host network: it publishes no ports"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if po := m.Services[0].Origin.Podman; po == nil || po.Container != "local-ai-ollama" || len(po.Ports) != 2 {
		t.Errorf("podman origin %+v", po)
	}
	if m.Services[1].Origin.HomeManager != "services.ollama" || len(m.Notes) != 1 {
		t.Errorf("home-manager origin %+v, notes %q", m.Services[1].Origin, m.Notes)
	}
	for _, bad := range []struct{ in, want string }{
		{`{"version":1,"services":[],"notes":[]}`, "notes: is new in manifest version 2"},
		{`{"version":1,"services":[{"name":"a","userUnits":["a.service"],"ports":[{"port":1}],"origin":{"podman":{"container":"a","ports":[]}}}]}`,
			"services[0].origin: is new in manifest version 2"},
		{`{"version":2,"services":[{"name":"a","userUnits":["a.service"],"ports":[{"port":1}],"origin":{"podman":{"container":"a","ports":["1:2:3:4"]}}}]}`,
			`services[0].origin.podman.ports[0]: "1:2:3:4" is not a podman port spec`},
		{`{"version":2,"services":[{"name":"a","userUnits":["a.service"],"ports":[{"port":1}],"origin":{"homeManager":{"option":"x"}}}]}`,
			`services[0].origin.homeManager.option: "x" is not an option path`},
	} {
		if _, err := Parse("t", []byte(bad.in)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: %v, want %q", bad.in, err, bad.want)
		}
	}
}

// portSpecCorpus is testdata/port-specs.json, which nix/lib.nix's
// parsePortSpec is tested against too.
type portSpecCorpus struct {
	Valid map[string][]struct {
		Address  string `json:"address"`
		Port     uint16 `json:"port"`
		Protocol string `json:"protocol"`
	} `json:"valid"`
	Invalid []string `json:"invalid"`
}

func TestPodmanPortsCorpus(t *testing.T) {
	data, err := os.ReadFile("testdata/port-specs.json")
	if err != nil {
		t.Fatal(err)
	}
	var c portSpecCorpus
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Valid) < 20 || len(c.Invalid) < 20 {
		t.Fatalf("the corpus has %d valid and %d invalid specs", len(c.Valid), len(c.Invalid))
	}
	for spec, want := range c.Valid {
		p, err := ParsePodmanPort(spec)
		if err != nil {
			t.Errorf("%q: %v", spec, err)
			continue
		}
		got := p.HostEndpoints()
		if len(got) != len(want) {
			t.Errorf("%q binds %v, want %v", spec, got, want)
			continue
		}
		for i, w := range want {
			addr, _ := endpoint.ParseAddress(w.Address)
			if got[i].Port != w.Port || string(got[i].Proto) != w.Protocol || got[i].Addr != addr {
				t.Errorf("%q binds %v, want %v", spec, got, want)
			}
		}
	}
	for _, bad := range c.Invalid {
		if _, err := ParsePodmanPort(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestMovePodmanPort(t *testing.T) {
	tcp := func(port uint16, addr string) endpoint.Endpoint {
		a, _ := endpoint.ParseAddress(addr)
		return endpoint.Endpoint{Proto: endpoint.TCP, Port: port, Addr: a}
	}
	cases := []struct {
		specs []string
		from  endpoint.Endpoint
		to    uint16
		want  string
	}{
		{[]string{"8080:80", "11434:11434"}, tcp(11434, ""), 11435, "8080:80 11435:11434"},
		{[]string{"127.0.0.1:6333:6333"}, tcp(6333, "127.0.0.1"), 6335, "127.0.0.1:6335:6333"},
		{[]string{"[::1]:6333:6333"}, tcp(6333, "::1"), 6335, "[::1]:6335:6333"},
		{[]string{"8000-8002:9000-9002"}, tcp(8001, ""), 8101, "8000:9000 8101:9001 8002:9002"},
		{[]string{"53:53/udp"}, endpoint.Endpoint{Proto: endpoint.UDP, Port: 53}, 5353, "5353:53/udp"},
		{[]string{"53:53/UDP"}, endpoint.Endpoint{Proto: endpoint.UDP, Port: 53}, 5353, "5353:53/udp"},
		{[]string{"8080:80/TCP"}, tcp(8080, ""), 8081, "8081:80"},
	}
	for _, c := range cases {
		got, ok := MovePodmanPort(c.specs, c.from, c.to)
		if !ok || strings.Join(got, " ") != c.want {
			t.Errorf("%q moving %v to %d: %q (%v), want %q", c.specs, c.from, c.to, got, ok, c.want)
		}
	}
	if _, ok := MovePodmanPort([]string{"8080:80"}, tcp(11434, ""), 1); ok {
		t.Error("moved a port no entry binds")
	}
	// One entry for both protocols: moving one would move the other.
	if _, ok := MovePodmanPort([]string{"53:53/tcp,udp"}, endpoint.Endpoint{Proto: endpoint.UDP, Port: 53}, 5353); ok {
		t.Error("moved both protocols of 53:53/tcp,udp")
	}
}

func TestKnownServicesTable(t *testing.T) {
	k, ok := KnownFor("ollama.service")
	if !ok || k.NixOSModule != "services.ollama" || k.Ports[0] != 11434 {
		t.Errorf("ollama: %+v", k)
	}
	if !slices.Equal(k.Family, []string{"ollama-model-loader.service"}) {
		t.Errorf("ollama's family (the units nixpkgs' module defines around it): %v", k.Family)
	}
	if k, _ := KnownFor("mindsdb.service"); k.NixOSModule != "" {
		t.Errorf("mindsdb has no NixOS module, the table says %q", k.NixOSModule)
	}
	if _, ok := KnownFor("sshd.service"); ok {
		t.Error("sshd is not a known service")
	}
}
