package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/portclaim/portclaim/pkg/places"
	"github.com/portclaim/portclaim/pkg/protocol"
)

// ErrNoBroker means nothing listens at the broker's socket: portclaim's
// NixOS module is not on this machine, or its socket unit is stopped.
var ErrNoBroker = errors.New("no portclaim broker is listening")

// Call sends req to the broker at path and returns its answer. ctx's
// deadline bounds the whole exchange: the dial, systemd starting the
// broker, its work, the answer.
func Call(ctx context.Context, path string, req protocol.Request) (protocol.Response, error) {
	req.Version = protocol.Version
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return protocol.Response{}, fmt.Errorf("%w at %s", ErrNoBroker, path)
		}
		return protocol.Response{}, fmt.Errorf("connecting to the broker at %s: %w", path, err)
	}
	defer conn.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(5 * time.Minute)
	}
	conn.SetDeadline(deadline)
	data, err := json.Marshal(req)
	if err != nil {
		return protocol.Response{}, err
	}
	// A broker that refuses at once (busy) answers and closes before it
	// reads: the write may fail, and its answer is still there to read.
	_, werr := conn.Write(append(data, '\n'))
	var resp protocol.Response
	if err := json.NewDecoder(io.LimitReader(conn, maxResponse)).Decode(&resp); err != nil {
		if werr != nil {
			return protocol.Response{}, fmt.Errorf("asking the broker: %w", werr)
		}
		return protocol.Response{}, fmt.Errorf("reading the broker's answer: %w", err)
	}
	if resp.Version != protocol.Version {
		return resp, fmt.Errorf("the broker speaks protocol version %d, this portclaim %d: update portclaim on one side", resp.Version, protocol.Version)
	}
	if !resp.OK {
		return resp, fmt.Errorf("the broker refused: %s", resp.Error)
	}
	return resp, nil
}

// Client is the broker's side of yield.Actor: it asks the broker at
// Socket to act for the user who runs it (the broker knows them by
// SO_PEERCRED). User names them in what to do without a broker: root's
// own command for them.
type Client struct {
	Socket string
	User   string
	// Wait is how long the broker is asked to wait for each job and for
	// ports (0: its default; it caps what it is asked).
	Wait time.Duration
}

var _ protocol.Actor = Client{}

// Yield asks the broker to make req's units yield to the caller.
func (c Client) Yield(ctx context.Context, req protocol.YieldRequest) (protocol.YieldResult, error) {
	resp, err := c.ask(ctx, "resolve", protocol.Request{Op: protocol.OpYield, Yield: &req})
	if err != nil {
		return protocol.YieldResult{}, err
	}
	if resp.Yield == nil {
		return protocol.YieldResult{}, errNoResult
	}
	return *resp.Yield, nil
}

// Release asks the broker to give the caller's claims on req's units
// back.
func (c Client) Release(ctx context.Context, req protocol.ReleaseRequest) (protocol.ReleaseResult, error) {
	resp, err := c.ask(ctx, "release", protocol.Request{Op: protocol.OpRelease, Release: &req})
	if err != nil {
		return protocol.ReleaseResult{}, err
	}
	if resp.Release == nil {
		return protocol.ReleaseResult{}, errNoResult
	}
	return *resp.Release, nil
}

var errNoResult = errors.New("the broker's answer has no result")

// ask sends req for command (resolve's yield, release's release).
// Without a broker, nothing was changed: the error says how to get one,
// and root's command that does it now. A broker's refusal says itself
// whether anything was changed (the broker renders its ActError).
func (c Client) ask(ctx context.Context, command string, req protocol.Request) (protocol.Response, error) {
	req.WaitMS = c.Wait.Milliseconds()
	resp, err := Call(ctx, c.Socket, req)
	if errors.Is(err, ErrNoBroker) {
		if places.IsSocket(c.Socket) {
			return resp, protocol.Unchanged(fmt.Errorf("%w: portclaim.socket is stopped (`systemctl status portclaim.socket` says why; `sudo systemctl start portclaim.socket` starts it); until then root can: sudo portclaim %s --user %s", err, command, c.User))
		}
		return resp, protocol.Unchanged(fmt.Errorf("%w: portclaim's NixOS module installs it (services.portclaim.enable = true; in configuration.nix); until then root can: sudo portclaim %s --user %s", err, command, c.User))
	}
	return resp, err
}
