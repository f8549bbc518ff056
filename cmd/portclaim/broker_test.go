package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portclaim/portclaim/pkg/broker"
	"github.com/portclaim/portclaim/pkg/gather"
	"github.com/portclaim/portclaim/pkg/yield"
)

// TestNoBrokerNamesTheCommand: without the broker, root's way to do it
// now is the command the user ran, not always resolve.
func TestNoBrokerNamesTheCommand(t *testing.T) {
	a := &app{places: gather.Default}
	a.places.BrokerSocket = filepath.Join(t.TempDir(), "no.sock")
	for _, c := range []struct {
		command string
		req     broker.Request
	}{
		{"resolve", broker.Request{Op: broker.OpYield, Yield: &yield.YieldRequest{Service: "ollama", Units: []string{"ollama.service"}}}},
		{"release", broker.Request{Op: broker.OpRelease, Release: &yield.ReleaseRequest{Units: []string{"ollama.service"}}}},
	} {
		_, err := a.askBroker(context.Background(), c.command, c.req)
		if !errors.Is(err, broker.ErrNoBroker) {
			t.Fatalf("%s: %v, want no broker", c.command, err)
		}
		if want := "root can: sudo portclaim " + c.command + " --user NAME"; !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %q lacks %q", c.command, err, want)
		}
	}
}
