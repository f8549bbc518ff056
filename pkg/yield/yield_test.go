package yield

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
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

func TestPartialErrorIsNotNothingChanged(t *testing.T) {
	plain := errors.New("reading x.service: no bus")
	if !NothingChanged(plain) {
		t.Error("an error before any change")
	}
	p := &PartialError{Err: plain, Done: []string{"your earlier release of y.service was finished first: restarted: started again"}}
	if NothingChanged(fmt.Errorf("wrapped: %w", p)) || !errors.Is(p, plain) || !strings.Contains(p.Error(), "y.service") {
		t.Errorf("%v", p)
	}
}

// TestBudgetCountsEveryUnit: the changes' budget grows with the units
// planned (sockets and dependents included), a job's wait each.
func TestBudgetCountsEveryUnit(t *testing.T) {
	one, many := budget(10*time.Second, 1), budget(10*time.Second, 1+maxDependents)
	if many-one != time.Duration(maxDependents)*(10*time.Second+settle) || one < 10*time.Second+portWait {
		t.Errorf("budget 1: %s, %d: %s", one, 1+maxDependents, many)
	}
}
