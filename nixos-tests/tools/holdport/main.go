// Command holdport is a tiny stand-in service for end-to-end tests: it binds
// the sockets named on its command line and holds them until SIGTERM/SIGINT.
//
// Usage:
//
//	holdport tcp:127.0.0.1:7001 udp:0.0.0.0:7002 tcp:[::]:7003,v6only tcp::7004
//
// Each argument is PROTO:ADDRESS[,v6only]. PROTO is tcp, tcp4, tcp6, udp,
// udp4 or udp6. An empty host or "*" ("tcp::7001", "tcp:*:7001") means all
// addresses, dual stack. ",v6only" sets IPV6_V6ONLY=1 on the socket, so an
// IPv6 wildcard does not also claim the IPv4 port.
//
// "unix:/path" listens on a Unix stream socket instead, and accepts every
// connection without ever answering: a D-Bus peer that hangs, for the
// tests that prove portclaim's deadlines. "dial:/path" connects to one
// and says nothing: a client that holds a connection open.
//
// For every bound socket it prints "listening PROTO ADDRESS" to stdout. If a
// bind fails it prints Go's error (which contains "bind: address already in
// use" for a conflict) to stderr and exits 1. Once every socket is bound it
// tells systemd it is ready (READY=1 on $NOTIFY_SOCKET, set for a
// Type=notify unit): such a unit's start job then says whether it got its
// ports, at once, instead of a moment after the job.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

type spec struct {
	proto  string // as given: tcp, udp, tcp6, ...
	addr   string // Go address, e.g. "127.0.0.1:7001" or ":7001"
	v6only bool
}

func parseSpec(s string) (spec, error) {
	var sp spec
	body, suffix, hasSuffix := strings.Cut(s, ",")
	if hasSuffix {
		if suffix != "v6only" {
			return sp, fmt.Errorf("%q: unknown option %q (only v6only is supported)", s, suffix)
		}
		sp.v6only = true
	}
	proto, addr, ok := strings.Cut(body, ":")
	if !ok {
		return sp, fmt.Errorf("%q: want PROTO:ADDRESS", s)
	}
	if proto == "unix" || proto == "dial" {
		sp.proto, sp.addr = proto, addr
		return sp, nil
	}
	switch proto {
	case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6":
	default:
		return sp, fmt.Errorf("%q: unknown protocol %q", s, proto)
	}
	// "*:7001" is the familiar spelling of "all addresses"; Go spells it ":7001".
	addr = strings.TrimPrefix(addr, "*")
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return sp, fmt.Errorf("%q: %v", s, err)
	}
	sp.proto, sp.addr = proto, addr
	return sp, nil
}

// listenConfig returns a ListenConfig that sets IPV6_V6ONLY=1 when asked.
// The Control hook runs after Go's own default socket options and before
// bind, so it overrides Go's dual-stack default for wildcard addresses.
func listenConfig(v6only bool) net.ListenConfig {
	if !v6only {
		return net.ListenConfig{}
	}
	return net.ListenConfig{
		Control: func(network, address string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, 1)
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
}

// bind opens the socket for sp and returns it with its actual local address.
func bind(ctx context.Context, sp spec) (io.Closer, net.Addr, error) {
	lc := listenConfig(sp.v6only)
	if sp.proto == "dial" {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", sp.addr)
		if err != nil {
			return nil, nil, err
		}
		return c, c.RemoteAddr(), nil
	}
	if sp.proto == "unix" {
		l, err := lc.Listen(ctx, "unix", sp.addr)
		if err != nil {
			return nil, nil, err
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				// Held open, read, never answered.
				go func() { _, _ = io.Copy(io.Discard, c) }()
			}
		}()
		return l, l.Addr(), nil
	}
	if strings.HasPrefix(sp.proto, "tcp") {
		l, err := lc.Listen(ctx, sp.proto, sp.addr)
		if err != nil {
			return nil, nil, err
		}
		return l, l.Addr(), nil
	}
	pc, err := lc.ListenPacket(ctx, sp.proto, sp.addr)
	if err != nil {
		return nil, nil, err
	}
	return pc, pc.LocalAddr(), nil
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: holdport PROTO:ADDRESS[,v6only]...  (e.g. tcp:127.0.0.1:7001 udp:[::]:7002,v6only)")
		return 2
	}
	specs := make([]spec, 0, len(args))
	for _, a := range args {
		sp, err := parseSpec(a)
		if err != nil {
			fmt.Fprintln(os.Stderr, "holdport:", err)
			return 2
		}
		specs = append(specs, sp)
	}

	// Register for signals before binding so a stop request that arrives
	// right after the "listening" lines is not lost.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	// Keep every socket referenced until exit: an unreachable net.Listener
	// may be closed by its finalizer, silently releasing the port.
	var held []io.Closer
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for _, sp := range specs {
		c, addr, err := bind(ctx, sp)
		if err != nil {
			fmt.Fprintln(os.Stderr, "holdport:", err)
			return 1
		}
		held = append(held, c)
		fmt.Printf("listening %s %s\n", sp.proto, addr)
	}
	if err := notifyReady(); err != nil {
		fmt.Fprintln(os.Stderr, "holdport: telling systemd it is ready:", err)
		return 1
	}

	<-ctx.Done()
	return 0
}

// notifyReady sends READY=1 to systemd's notification socket, when there
// is one (sd_notify(3); an abstract socket starts with "@").
func notifyReady() error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte("READY=1"))
	return err
}
