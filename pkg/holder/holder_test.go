package holder

import (
	"errors"
	"testing"

	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/host"
)

// errClosed is what reading another user's open files gives.
var errClosed = errors.New("permission denied")

var (
	ollama = host.UnitRef{Name: "ollama.service"}
	sshd   = host.UnitRef{Name: "sshd.service"}
	aliceC = host.UnitRef{User: true, UserUID: 1000, Name: "podman-local-ai-ollama.service"}
)

var table = []host.Process{
	{PID: 1, UID: 0, Command: "systemd", Unit: host.UnitRef{Name: "init.scope"}},
	{PID: 50, UID: 0, Command: "sshd", Unit: sshd},
	{PID: 70, UID: 0, Command: "ollama", Unit: ollama},
	{PID: 71, UID: 0, Command: "ollama-runner", Unit: ollama},
	{PID: 90, UID: 61000, Command: "qdrant", Unit: host.UnitRef{Name: "qdrant.service"}},
	{PID: 199, UID: 1000, Command: "systemd", Unit: host.UnitRef{User: true, UserUID: 1000, Name: "init.scope"}},
	{PID: 200, UID: 1000, Command: "conmon", Unit: aliceC},
	{PID: 300, UID: 65534, Command: "holdport"},
}

func sock(uid uint32, inode uint64) host.Socket {
	return host.Socket{Endpoint: endpoint.Endpoint{Proto: endpoint.TCP, Port: 11434}, UID: uid, Inode: inode}
}

// asRoot can read every process's fds; pid 71 holds inode 7.
func asRoot(seen *[]int) FDLookup {
	return func(p host.Process, inode uint64) (bool, error) {
		*seen = append(*seen, p.PID)
		return p.PID == 71 && inode == 7, nil
	}
}

func unprivileged(host.Process, uint64) (bool, error) { return false, errClosed }

func TestConfirmedReadsExpectedUnitsFirst(t *testing.T) {
	var seen []int
	h := Attribute(sock(0, 7), table, []host.UnitRef{ollama}, asRoot(&seen))
	if h.Confidence != Confirmed || h.Unit != ollama || h.PID != 71 || h.Command != "ollama-runner" {
		t.Fatalf("got %+v", h)
	}
	if len(seen) != 2 || seen[0] != 70 || seen[1] != 71 {
		t.Errorf("read the fds of pids %v; want only ollama.service's 70, 71", seen)
	}
}

func TestConfirmedOutsideExpectedUnits(t *testing.T) {
	var seen []int
	h := Attribute(sock(0, 7), table, []host.UnitRef{sshd}, asRoot(&seen))
	if h.Confidence != Confirmed || h.Unit != ollama {
		t.Fatalf("got %+v, want ollama.service confirmed", h)
	}
}

func TestProbableFromTheExpectedUnit(t *testing.T) {
	h := Attribute(sock(0, 7), table, []host.UnitRef{ollama}, unprivileged)
	if h.Confidence != Probable || h.Unit != ollama || h.PID != 70 {
		t.Fatalf("got %+v, want ollama.service probable with pid 70", h)
	}
}

func TestProbableFromTheOnlyUnitOfAUID(t *testing.T) {
	h := Attribute(sock(61000, 9), table, nil, unprivileged)
	if h.Confidence != Probable || h.Unit.Name != "qdrant.service" {
		t.Fatalf("got %+v, want qdrant.service probable", h)
	}
	h = Attribute(sock(65534, 9), table, nil, unprivileged)
	if h.Confidence != Probable || h.Unit.Name != "" || h.PID != 300 {
		t.Fatalf("got %+v, want pid 300 outside any unit", h)
	}
}

func TestTheUserManagerItselfIsNotAGuess(t *testing.T) {
	h := Attribute(sock(1000, 9), table, nil, unprivileged)
	if h.Confidence != Probable || h.Unit != aliceC {
		t.Fatalf("got %+v, want alice's only service, not her manager", h)
	}
}

func TestUnknownWhenRootOwnsItAndNothingIsExpected(t *testing.T) {
	h := Attribute(sock(0, 7), table, nil, unprivileged)
	if h.Known() || h.PID != 0 {
		t.Fatalf("got %+v, want unknown", h)
	}
	h = Attribute(sock(4242, 7), table, nil, unprivileged)
	if h.Known() {
		t.Fatalf("socket of a uid with no process: got %+v, want unknown", h)
	}
}

func TestOwnSocketsAreConfirmedUnprivileged(t *testing.T) {
	own := func(p host.Process, inode uint64) (bool, error) {
		if p.PID != 200 {
			return false, errClosed
		}
		return inode == 5, nil
	}
	h := Attribute(sock(1000, 5), table, []host.UnitRef{ollama}, own)
	if h.Confidence != Confirmed || h.Unit != aliceC {
		t.Fatalf("got %+v, want alice's unit confirmed", h)
	}
}

// TestDescribeWithoutAProcess: a holder known by its unit alone (the
// cgroup named it, or a .socket unit's listener) has no process to name.
func TestDescribeWithoutAProcess(t *testing.T) {
	nameOf := func(uint32) string { return "alice" }
	for _, c := range []struct {
		h    Holder
		want string
	}{
		{Holder{Unit: ollama, Confidence: Probable}, "system ollama.service"},
		{Holder{Unit: aliceC, Confidence: Probable}, "user alice's podman-local-ai-ollama.service"},
		{Holder{Unit: ollama, PID: 70, Command: "ollama", Confidence: Confirmed}, "system ollama.service (pid 70 ollama)"},
		{Holder{Unit: aliceC, PID: 200, Command: "conmon", Confidence: Confirmed}, "user alice's podman-local-ai-ollama.service (pid 200 conmon)"},
		{Holder{PID: 12, Command: "nc", Confidence: Confirmed}, "pid 12 nc outside any unit"},
	} {
		if got := c.h.Describe(nameOf); got != c.want {
			t.Errorf("Describe = %q, want %q", got, c.want)
		}
	}
}
