package testhooks

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestPauseAtReadsTheVariable: a pause at a point, or at a point on one
// unit, for a duration or until a path exists; a minute at most; none
// elsewhere, or for a duration that does not parse.
func TestPauseAtReadsTheVariable(t *testing.T) {
	for _, c := range []struct {
		spec, point, unit string
		path              string
		d                 time.Duration
		ok                bool
	}{
		{"before-stop=2s", "before-stop", "a.service", "", 2 * time.Second, true},
		{"before-stop:a.service=2s", "before-stop", "a.service", "", 2 * time.Second, true},
		{"before-stop:b.service=2s", "before-stop", "a.service", "", 0, false},
		{"before-stop=/run/go", "before-stop", "a.service", "/run/go", time.Minute, true},
		{"before-stop:a.service=/run/pc-race-go", "before-stop", "a.service", "/run/pc-race-go", time.Minute, true},
		{"before-stop=1h", "before-stop", "a.service", "", time.Minute, true},
		{"after-claim=2s", "before-stop", "a.service", "", 0, false},
		{"before-stop=soon", "before-stop", "a.service", "", 0, false},
		{"before-stop", "before-stop", "a.service", "", 0, false},
		{"", "before-stop", "a.service", "", 0, false},
	} {
		path, d, ok := pauseAt(c.spec, c.point, c.unit)
		if path != c.path || d != c.d || ok != c.ok {
			t.Errorf("%q at %s on %s: %q, %s, %v; want %q, %s, %v", c.spec, c.point, c.unit, path, d, ok, c.path, c.d, c.ok)
		}
	}
}

// TestFromEnvReadsAtEachPoint: the hooks read the variables when a point
// is reached, not once: a crash only at its point; a pause until a path
// that exists ends at once.
func TestFromEnvReadsAtEachPoint(t *testing.T) {
	env := map[string]string{}
	h := FromEnv(func(k string) string { return env[k] })
	var kills int
	defer func(k func()) { kill = k }(kill)
	kill = func() { kills++ }

	h.Crash("after-claim")
	env[CrashVar] = "after-begin-release"
	h.Crash("after-claim")
	if kills != 0 {
		t.Fatalf("killed at after-claim under %q", env[CrashVar])
	}
	h.Crash("after-begin-release")
	if kills != 1 {
		t.Fatalf("%d kills at after-begin-release", kills)
	}

	done := make(chan struct{})
	env[PauseVar] = "before-stop:a.service=" + t.TempDir() // there already
	go func() {
		h.Pause("before-stop", "a.service")
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a pause until a path that exists did not end")
	}

	// Until a path that does not exist yet: it holds until the path is
	// made, then ends.
	gate := filepath.Join(t.TempDir(), "go")
	env[PauseVar] = "before-stop:a.service=" + gate
	held := make(chan struct{})
	go func() {
		h.Pause("before-stop", "a.service")
		close(held)
	}()
	select {
	case <-held:
		t.Fatal("a pause until a missing path ended before the path was made")
	case <-time.After(300 * time.Millisecond):
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("a pause did not end once its path was made")
	}
}

// TestOnlyTheE2EBuildReadsTheTestVariables: portclaim as it ships holds
// neither variable's name, so nothing in it can read them; built with
// tag e2e, as the end-to-end tests build it, it holds both.
func TestOnlyTheE2EBuildReadsTheTestVariables(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI has the go tool")
		}
		t.Skip("needs the go tool")
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tags string
		want bool
	}{{"", false}, {"e2e", true}} {
		bin := filepath.Join(t.TempDir(), "portclaim")
		cmd := exec.Command("go", "build", "-tags", c.tags, "-o", bin, "./cmd/portclaim")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building portclaim with tags %q: %v\n%s", c.tags, err, out)
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{PauseVar, CrashVar} {
			if got := bytes.Contains(data, []byte(v)); got != c.want {
				t.Errorf("portclaim built with tags %q holds %s: %v, want %v", c.tags, v, got, c.want)
			}
		}
	}
}
