package endpoint

import (
	"encoding/json"
	"net/netip"
	"testing"
)

func ep(proto Proto, addr string, port uint16) Endpoint {
	e := Endpoint{Proto: proto, Port: port}
	if addr != "*" {
		e.Addr = netip.MustParseAddr(addr)
	}
	return e
}

func TestOverlap(t *testing.T) {
	v6only := func(e Endpoint) Endpoint { e.V6Only = true; return e }
	cases := []struct {
		name string
		a, b Endpoint
		want bool
	}{
		{"same v4", ep(TCP, "127.0.0.1", 80), ep(TCP, "127.0.0.1", 80), true},
		{"v4 wildcard vs loopback", ep(TCP, "0.0.0.0", 80), ep(TCP, "127.0.0.1", 80), true},
		{"loopback vs v4 wildcard", ep(TCP, "127.0.0.1", 80), ep(TCP, "0.0.0.0", 80), true},
		{"two loopbacks", ep(TCP, "127.0.0.2", 80), ep(TCP, "127.0.0.3", 80), false},
		{"other port", ep(TCP, "0.0.0.0", 80), ep(TCP, "0.0.0.0", 81), false},
		{"other proto", ep(TCP, "0.0.0.0", 80), ep(UDP, "0.0.0.0", 80), false},
		{"dual-stack :: vs v4 wildcard", ep(TCP, "::", 80), ep(TCP, "0.0.0.0", 80), true},
		{"dual-stack :: vs v4 loopback", ep(TCP, "127.0.0.1", 80), ep(TCP, "::", 80), true},
		{"v6only :: vs v4 wildcard", v6only(ep(TCP, "::", 80)), ep(TCP, "0.0.0.0", 80), false},
		{"::1 vs v4 wildcard", ep(TCP, "::1", 80), ep(TCP, "0.0.0.0", 80), false},
		{"::1 vs ::", ep(TCP, "::1", 80), v6only(ep(TCP, "::", 80)), true},
		{"::1 vs ::2", ep(TCP, "::1", 80), ep(TCP, "::2", 80), false},
		{"v4-mapped vs v4", ep(TCP, "::ffff:127.0.0.1", 80), ep(TCP, "127.0.0.1", 80), true},
		{"v4-mapped vs other v4", ep(TCP, "::ffff:127.0.0.2", 80), ep(TCP, "127.0.0.3", 80), false},
		{"all vs anything", ep(TCP, "*", 80), ep(TCP, "10.1.2.3", 80), true},
		{"all vs v6only ::1", ep(UDP, "*", 53), v6only(ep(UDP, "::1", 53)), true},
		{"all vs other port", ep(UDP, "*", 53), ep(UDP, "::1", 54), false},
	}
	for _, c := range cases {
		if got := Overlap(c.a, c.b); got != c.want {
			t.Errorf("%s: Overlap(%v, %v) = %v, want %v", c.name, c.a, c.b, got, c.want)
		}
		if got := Overlap(c.b, c.a); got != c.want {
			t.Errorf("%s (swapped): Overlap(%v, %v) = %v, want %v", c.name, c.b, c.a, got, c.want)
		}
	}
}

func TestString(t *testing.T) {
	for e, want := range map[Endpoint]string{
		ep(TCP, "*", 80):         "*:80",
		ep(TCP, "::", 80):        "[::]:80",
		ep(TCP, "127.0.0.1", 80): "127.0.0.1:80",
	} {
		if e.String() != want {
			t.Errorf("String() = %q, want %q", e.String(), want)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	for _, e := range []Endpoint{ep(TCP, "*", 11434), ep(UDP, "127.0.0.1", 53), ep(TCP, "::1", 8080)} {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		var back Endpoint
		if err := json.Unmarshal(b, &back); err != nil || back != e {
			t.Errorf("%s -> %s -> %v (%v)", e, b, back, err)
		}
	}
}

func TestJSONRefusesWhatItCannotCheck(t *testing.T) {
	for _, in := range []string{
		`{"port":0,"protocol":"tcp","address":""}`,
		`{"port":80,"protocol":"sctp","address":""}`,
		`{"port":80,"protocol":"tcp","address":"localhost"}`,
		`{"port":80,"protocol":"tcp","address":"fe80::1%eth0"}`,
		`{"port":70000,"protocol":"tcp","address":""}`,
		`{"port":80,"protocol":"tcp","address":"","extra":1}`,
	} {
		var e Endpoint
		if err := json.Unmarshal([]byte(in), &e); err == nil {
			t.Errorf("%s: accepted as %v", in, e)
		}
	}
}

func TestPortProto(t *testing.T) {
	// The address is not part of it: one port, whatever it binds.
	for _, c := range []struct {
		e    Endpoint
		want string
	}{
		{ep(TCP, "*", 11434), "11434/tcp"},
		{ep(UDP, "::", 53), "53/udp"},
		{ep(TCP, "127.0.0.1", 65535), "65535/tcp"},
	} {
		if got := c.e.PortProto(); got != c.want {
			t.Errorf("PortProto(%v) = %q, want %q", c.e, got, c.want)
		}
	}
	if got := PortList([]Endpoint{ep(TCP, "*", 11434), ep(UDP, "::", 53)}); got != "11434/tcp, 53/udp" {
		t.Errorf("PortList = %q", got)
	}
	if got := PortList(nil); got != "" {
		t.Errorf("PortList(nil) = %q", got)
	}
}
