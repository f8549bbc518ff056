package unitname

import (
	"encoding/json"
	"os"
	"testing"
)

// TestSharedCorpus holds Validate and Claimable to testdata/names.json,
// which the NixOS module's option types are tested against too: a name
// the module accepts is one the Go side accepts.
func TestSharedCorpus(t *testing.T) {
	data, err := os.ReadFile("testdata/names.json")
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ Claimable, Valid, Invalid []string }
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Claimable {
		if !Claimable(n) {
			t.Errorf("%q: not claimable (%v)", n, Validate(n))
		}
	}
	for _, n := range c.Valid {
		if Validate(n) != nil || Claimable(n) {
			t.Errorf("%q: want a valid name (%v) that is not claimable (%v)", n, Validate(n), Claimable(n))
		}
	}
	for _, n := range c.Invalid {
		if Validate(n) == nil {
			t.Errorf("%q: accepted", n)
		}
	}
}

func TestSocketFor(t *testing.T) {
	if SocketFor("ollama.service") != "ollama.socket" || SocketFor("a.socket") != "" {
		t.Error("SocketFor")
	}
}
