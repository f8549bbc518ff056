package broker

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portclaim/portclaim/pkg/places"
	"github.com/portclaim/portclaim/pkg/protocol"
)

// TestNoBrokerNamesTheCommand: without the broker, root's way to do it
// now is the command the user ran, not always resolve, for that user (a
// literal NAME is no command to run), and nothing was changed; a socket
// file nobody listens on is portclaim.socket stopped, not a module to
// install.
func TestNoBrokerNamesTheCommand(t *testing.T) {
	c := Client{Socket: filepath.Join(t.TempDir(), "no.sock"), User: "alice"}
	ctx := context.Background()
	_, yerr := c.Yield(ctx, protocol.YieldRequest{Service: "ollama", Units: []string{"ollama.service"}})
	_, rerr := c.Release(ctx, protocol.ReleaseRequest{Units: []string{"ollama.service"}})
	for command, err := range map[string]error{"resolve": yerr, "release": rerr} {
		if !errors.Is(err, ErrNoBroker) {
			t.Fatalf("%s: %v, want no broker", command, err)
		}
		if want := "root can: sudo portclaim " + command + " --user alice"; !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %q lacks %q", command, err, want)
		}
		if strings.Count(err.Error(), "nothing was changed") != 1 {
			t.Errorf("%s: %q does not say once that nothing was changed", command, err)
		}
	}
	ln, err := net.Listen("unix", c.Socket)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // its file stays, as systemd's does when portclaim.socket stops
	_, err = c.Yield(ctx, protocol.YieldRequest{Service: "ollama", Units: []string{"ollama.service"}})
	if !errors.Is(err, ErrNoBroker) || !strings.Contains(err.Error(), "systemctl status portclaim.socket") || strings.Contains(err.Error(), "installs it") {
		t.Errorf("a stopped socket: %v", err)
	}
}

// TestABrokersAnswerSpeaksForItself: the broker says in its answer that
// nothing was changed (no policy here), and the client does not say it
// again.
func TestABrokersAnswerSpeaksForItself(t *testing.T) {
	s := &Server{Places: places.Default}
	s.Places.PolicyPath = filepath.Join(t.TempDir(), "policy.json")
	path, _ := serve(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := Client{Socket: path, User: "alice"}.Release(ctx, protocol.ReleaseRequest{Units: []string{"ollama.service"}})
	if err == nil || !strings.HasPrefix(err.Error(), "the broker refused: ") || strings.Count(err.Error(), "nothing was changed") != 1 {
		t.Errorf("%v: want the broker's refusal, saying once that nothing was changed", err)
	}
}
