package yield

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portclaim/portclaim/pkg/claimstore"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/plan"
	"github.com/portclaim/portclaim/pkg/policy"
	"github.com/portclaim/portclaim/pkg/protocol"
	"github.com/portclaim/portclaim/pkg/systemd"
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
	for i := 0; i < protocol.MaxUnits-1; i++ {
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

// TestReconcileGoesOnPastAUsersError: a user whose records cannot be
// read does not keep reconcile from the next users; every error is said.
func TestReconcileGoesOnPastAUsersError(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs as root")
		}
		t.Skip("claims are root's: needs root")
	}
	dir := filepath.Join(t.TempDir(), "claims")
	for _, u := range []string{"pc-aaa", "pc-bbb"} {
		if err := os.MkdirAll(filepath.Join(dir, u), 0o755); err != nil {
			t.Fatal(err)
		}
		// Only root can do this: a file where the releases' directory is.
		if err := os.WriteFile(filepath.Join(dir, u, ".releasing"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := &Service{Store: claimstore.Store{Dir: dir}, Authority: plan.Authority{Policy: &policy.Policy{ClaimsDir: dir}}, Wait: time.Second}
	out, err := s.Reconcile(context.Background())
	if err == nil || !strings.Contains(err.Error(), "pc-aaa:") || !strings.Contains(err.Error(), "pc-bbb:") {
		t.Fatalf("results %v, error %v; want both users' errors", out, err)
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

// TestOnlyLocalFilesMakeNotFoundGone: a user the database does not find
// is gone when passwd comes from local files alone; with a network
// source (or systemd's userdb, or NIS through compat) the source may not
// be up yet.
func TestOnlyLocalFilesMakeNotFoundGone(t *testing.T) {
	for conf, want := range map[string]bool{
		"passwd:         files\ngroup: files sss\n":    true,
		"# comment\npasswd: files [NOTFOUND=return]\n": true,
		"hosts: files dns\n":                           true,
		"passwd: files sss\n":                          false,
		"passwd:\tfiles ldap\n":                        false,
		"passwd: compat\n":                             false,
		"passwd: files mymachines systemd\n":           false,
	} {
		if got := localUsers([]byte(conf)); got != want {
			t.Errorf("%q: %v, want %v", conf, got, want)
		}
	}
}

// TestStartOrderFollowsAfter: units started one job each go after those
// they are ordered after (After=, or the other's Before=); a cycle does
// not lose any.
func TestStartOrderFollowsAfter(t *testing.T) {
	d := func(name string, after, before []string) systemd.Detail {
		return systemd.Detail{Unit: host.Unit{Name: name}, After: after, Before: before}
	}
	got := startOrder([]systemd.Detail{
		d("loader.service", []string{"ollama.service"}, nil),
		d("ollama.service", []string{"network.target"}, nil),
		d("db.service", nil, []string{"ollama.service"}),
	})
	if strings.Join(got, " ") != "db.service ollama.service loader.service" {
		t.Errorf("%v", got)
	}
	cycle := startOrder([]systemd.Detail{d("a.service", []string{"b.service"}, nil), d("b.service", []string{"a.service"}, nil)})
	if len(cycle) != 2 {
		t.Errorf("a cycle: %v", cycle)
	}
}

// TestOnlyGetentsNotFoundMeansGone: a user Go's lookup does not know is
// gone only when getent says "not found" (exit 2); getent failing any
// other way (exit 1: a directory down, a timeout), or not there at all,
// finds nothing out, and a user getent finds exists.
func TestOnlyGetentsNotFoundMeansGone(t *testing.T) {
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	saved := getentPaths
	t.Cleanup(func() { getentPaths = saved })
	const who = "pc-nobody-here"
	for _, c := range []struct {
		name string
		path string
		gone bool
	}{
		{"not found", script("notfound", "exit 2"), true},
		{"failing otherwise", script("failing", "echo 'directory down' >&2; exit 1"), false},
		{"found", script("found", "echo '"+who+":x:4242:4242::/home/x:/bin/sh'"), false},
		{"no getent", filepath.Join(dir, "missing"), false},
	} {
		getentPaths = []string{c.path}
		if got := userGone(context.Background(), who); got != c.gone {
			t.Errorf("getent %s: userGone = %v, want %v", c.name, got, c.gone)
		}
	}
}
