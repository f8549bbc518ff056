package policy

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	p, err := Parse("p.json", []byte(`{"version":1,"claimsDir":"/var/lib/portclaim/claims",
		"yield":[{"unit":"ollama.service","users":["alice"]},{"unit":"qdrant.service","users":["alice","bob","alice"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Allows("alice", "ollama.service") || !p.Allows("bob", "qdrant.service") || p.Allows("bob", "ollama.service") || p.Allows("alice", "sshd.service") {
		t.Errorf("Allows wrong for %+v", p.Yield)
	}
	if len(p.Yield["qdrant.service"]) != 2 {
		t.Errorf("a user listed twice counts once: %v", p.Yield["qdrant.service"])
	}
}

func TestParseProblems(t *testing.T) {
	_, err := Parse("p.json", []byte(`{"version":2,"claimsDir":"/var/lib/../lib/portclaim","yield":[{"unit":"../x","users":["alice"]},
		{"unit":"a.service","users":["../root"]},{"unit":"multi-user.target","users":["alice"]},{"unit":"b.service","unit":"c.service","users":[]}],"x":1}`))
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"version: 2", `claimsDir: "/var/lib/../lib/portclaim"`, "yield[0].unit", "yield[1].users[0]",
		`yield[2].unit: "multi-user.target" is not a .service or .socket`, "yield[3].unit: is given twice", "x: unknown field"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, err := Parse("p.json", []byte(strings.Repeat("[", 100))); err == nil || !strings.Contains(err.Error(), "levels") {
		t.Errorf("deep nesting: %v", err)
	}
}

// TestSharedUserCorpus holds ValidUser to testdata/users.json, which the
// NixOS module's option type is tested against too.
func TestSharedUserCorpus(t *testing.T) {
	data, err := os.ReadFile("testdata/users.json")
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ Valid, Invalid []string }
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	for _, u := range c.Valid {
		if !ValidUser(u) {
			t.Errorf("%q refused", u)
		}
	}
	for _, u := range c.Invalid {
		if ValidUser(u) {
			t.Errorf("%q accepted", u)
		}
	}
}

func TestYieldLine(t *testing.T) {
	p := &Policy{Yield: map[string][]string{"qdrant.service": {"bob"}}}
	got := p.YieldLine("alice", "ollama.service", "qdrant.service")
	want := `services.portclaim.yield."ollama.service".users = [ "alice" ]; services.portclaim.yield."qdrant.service".users = [ "alice" "bob" ];`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	var none *Policy
	if got := none.YieldLine("alice", "x.service"); got != `services.portclaim.yield."x.service".users = [ "alice" ];` {
		t.Errorf("without a policy: %s", got)
	}
}

func TestClaimsDirOrDefault(t *testing.T) {
	var none *Policy
	if got := none.ClaimsDirOrDefault(); got != DefaultClaimsDir {
		t.Errorf("no policy: %q", got)
	}
	if got := (&Policy{ClaimsDir: "/srv/claims"}).ClaimsDirOrDefault(); got != "/srv/claims" {
		t.Errorf("a policy's: %q", got)
	}
}
