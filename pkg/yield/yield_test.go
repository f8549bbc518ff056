package yield

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestSocketsAreAddedOrRefusedNeverDropped: the sockets that activate the
// asked units join them; one that would make more than maxUnits is
// refused, not left out (it would start its service again).
func TestSocketsAreAddedOrRefusedNeverDropped(t *testing.T) {
	triggers := map[string][]string{"a.service": {"a.socket", "a-admin.socket"}, "a.socket": {}, "a-admin.socket": {}}
	read := func(u string) ([]string, error) { return triggers[u], nil }
	got, err := withSockets([]string{"a.service"}, read)
	if err != nil || strings.Join(got, " ") != "a.service a.socket a-admin.socket" {
		t.Fatalf("%v, %v", got, err)
	}
	var many []string
	for i := 0; i < maxUnits-1; i++ {
		many = append(many, fmt.Sprintf("s%d.service", i))
	}
	many = append(many, "a.service")
	if got, err := withSockets(many, read); err == nil || !strings.Contains(err.Error(), "more than 8 units") {
		t.Fatalf("%d asked with two sockets more: %v, %v; want a refusal", len(many), got, err)
	}
	if _, err := withSockets([]string{"x.service"}, func(string) ([]string, error) { return nil, errors.New("no bus") }); err == nil {
		t.Fatal("a read error was dropped")
	}
}
