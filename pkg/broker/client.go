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
)

// ErrNoBroker means nothing listens at the broker's socket: portclaim's
// NixOS module is not on this machine, or its socket unit is stopped.
var ErrNoBroker = errors.New("no portclaim broker is listening")

// Call sends req to the broker at path and returns its answer. ctx's
// deadline bounds the whole exchange: the dial, systemd starting the
// broker, its work, the answer.
func Call(ctx context.Context, path string, req Request) (Response, error) {
	req.Version = Version
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return Response{}, fmt.Errorf("%w at %s", ErrNoBroker, path)
		}
		return Response{}, fmt.Errorf("connecting to the broker at %s: %w", path, err)
	}
	defer conn.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(5 * time.Minute)
	}
	conn.SetDeadline(deadline)
	data, err := json.Marshal(req)
	if err != nil {
		return Response{}, err
	}
	// A broker that refuses at once (busy) answers and closes before it
	// reads: the write may fail, and its answer is still there to read.
	_, werr := conn.Write(append(data, '\n'))
	var resp Response
	if err := json.NewDecoder(io.LimitReader(conn, maxResponse)).Decode(&resp); err != nil {
		if werr != nil {
			return Response{}, fmt.Errorf("asking the broker: %w", werr)
		}
		return Response{}, fmt.Errorf("reading the broker's answer: %w", err)
	}
	if resp.Version != Version {
		return resp, fmt.Errorf("the broker speaks protocol version %d, this portclaim %d: update portclaim on one side", resp.Version, Version)
	}
	if !resp.OK {
		return resp, fmt.Errorf("the broker refused: %s", resp.Error)
	}
	return resp, nil
}
