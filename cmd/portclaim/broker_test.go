package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portclaim/portclaim/pkg/broker"
	"github.com/portclaim/portclaim/pkg/gather"
	"github.com/portclaim/portclaim/pkg/yield"
)

// TestNoBrokerNamesTheCommand: without the broker, root's way to do it
// now is the command the user ran, not always resolve, for that user (a
// literal NAME is no command to run); a socket file nobody listens on is
// portclaim.socket stopped, not a module to install.
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
		_, err := a.askBroker(context.Background(), c.command, "alice", c.req)
		if !errors.Is(err, broker.ErrNoBroker) {
			t.Fatalf("%s: %v, want no broker", c.command, err)
		}
		if want := "root can: sudo portclaim " + c.command + " --user alice"; !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %q lacks %q", c.command, err, want)
		}
	}
	ln, err := net.Listen("unix", a.places.BrokerSocket)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // its file stays, as systemd's does when portclaim.socket stops
	_, err = a.askBroker(context.Background(), "resolve", "alice", broker.Request{Op: broker.OpYield, Yield: &yield.YieldRequest{Service: "ollama", Units: []string{"ollama.service"}}})
	if !errors.Is(err, broker.ErrNoBroker) || !strings.Contains(err.Error(), "systemctl status portclaim.socket") || strings.Contains(err.Error(), "installs it") {
		t.Errorf("a stopped socket: %v", err)
	}
}

// TestFailedSaysNothingChangedOnlyWhenSo: "nothing was changed" is said
// of root's own run and of a missing broker, unless earlier releases were
// finished first; a broker's answer speaks for itself and is not added to.
func TestFailedSaysNothingChangedOnlyWhenSo(t *testing.T) {
	plain := errors.New("reading the facts: timeout")
	partial := &yield.PartialError{Err: plain, Done: []string{"your earlier release of a.service was finished first"}}
	for _, c := range []struct {
		err     error
		root    bool
		nothing bool
	}{
		{plain, true, true},
		{partial, true, false},
		{fmt.Errorf("dial: %w", broker.ErrNoBroker), false, true},
		{errors.New("the broker was busy with other requests for too long; nothing was changed"), false, true},
		{errors.New("stopping a.service: timeout; before that: b.service started"), false, false},
	} {
		got := failedSays(c.err, c.root)
		if n := strings.Count(got, "nothing was changed"); n != map[bool]int{true: 1, false: 0}[c.nothing] {
			t.Errorf("%v (root %v): %q says \"nothing was changed\" %d times", c.err, c.root, got, n)
		}
	}
}
