package main

import (
	"context"
	"os/signal"
	"syscall"
	"time"

	"github.com/portclaim/portclaim/pkg/actionlog"
	"github.com/portclaim/portclaim/pkg/broker"
)

type brokerCmd struct {
	Idle time.Duration `default:"30s" help:"Exit after this long without a connection (systemd starts it again on the next)."`
	Wait time.Duration `default:"10s" help:"The longest a request may wait for each job and for ports."`
}

func (c *brokerCmd) Run(a *app) error {
	if a.euid != 0 {
		return fail(exitBadInput, "systemd starts it as root from portclaim.socket (services.portclaim.enable = true;)", "portclaim broker runs as root")
	}
	ln, err := broker.Activated()
	if err != nil {
		return fail(exitEnv, "systemd starts it from portclaim.socket, which hands it the socket", "portclaim broker: %v", err)
	}
	// systemd keeps the socket when the broker exits idle; closing our
	// copy must not unlink it.
	ln.SetUnlinkOnClose(false)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	srv := &broker.Server{Places: a.places, Wait: c.Wait, Idle: c.Idle, Log: actionlog.Journal()}
	return srv.Serve(ctx, ln)
}
