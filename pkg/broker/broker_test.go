package broker

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portclaim/portclaim/pkg/places"
	"github.com/portclaim/portclaim/pkg/protocol"
)

// serve starts a server on a socket of its own; it returns the path and
// a channel that closes when Serve returns.
func serve(t *testing.T, s *Server) (string, <-chan error) {
	t.Helper()
	if s.peerOf == nil {
		// Whoever runs the tests, the peer is alice (root is refused
		// before anything is read); end to end, the kernel says who.
		s.peerOf = func(*net.UnixConn) (uint32, error) { return 1000, nil }
		s.LookupUser = func(uint32) (string, error) { return "alice", nil }
	}
	path := filepath.Join(t.TempDir(), "broker.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() { done <- s.Serve(ctx, ln); ln.Close(); close(finished) }()
	t.Cleanup(func() { cancel(); ln.SetDeadline(time.Now()); <-finished })
	return path, done
}

func call(t *testing.T, path string, req protocol.Request) (protocol.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return Call(ctx, path, req)
}

func TestRequestsAreCheckedBeforeAnythingIsRead(t *testing.T) {
	path, _ := serve(t, &Server{})
	cases := []struct {
		req  protocol.Request
		want string
	}{
		{protocol.Request{Op: "stop"}, `op "stop" with these fields is not a request`},
		{protocol.Request{Op: protocol.OpYield}, "is not a request"},
		{protocol.Request{Op: protocol.OpYield, Yield: &protocol.YieldRequest{Service: "x", Units: []string{"poweroff.target"}}}, `"poweroff.target" is not a .service or .socket unit`},
	}
	for _, c := range cases {
		resp, err := call(t, path, c.req)
		if err == nil || !strings.Contains(resp.Error, c.want) || resp.OK {
			t.Errorf("%+v: %+v, %v; want %q", c.req, resp, err, c.want)
		}
	}
}

func TestWrongVersionAndGarbageAreRefused(t *testing.T) {
	path, _ := serve(t, &Server{})
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte(`{"version":7,"op":"status"}` + "\n"))
	buf := make([]byte, 4096)
	n, _ := conn.Read(buf)
	conn.Close()
	if !strings.Contains(string(buf[:n]), `protocol version 7; this broker speaks 1`) {
		t.Errorf("%s", buf[:n])
	}
	conn, _ = net.Dial("unix", path)
	conn.Write([]byte(`{"version":1,"op":"status","evil":true}` + "\n"))
	n, _ = conn.Read(buf)
	conn.Close()
	if !strings.Contains(string(buf[:n]), `"code":"bad-request"`) {
		t.Errorf("unknown field: %s", buf[:n])
	}
}

func TestOversizedRequestIsCutOff(t *testing.T) {
	path, _ := serve(t, &Server{})
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go conn.Write([]byte(`{"version":1,"op":"status","yield":{"service":"` + strings.Repeat("x", 1<<20) + `"}}`))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, _ := conn.Read(buf)
	if !strings.Contains(string(buf[:n]), "bad-request") {
		t.Errorf("%q", buf[:n])
	}
}

// TestOneUserCannotKeepAnotherOut: a user holding connections open gets
// no more than PerUser, and a silent one is cut off after ReadTimeout.
// (The end-to-end TestNoUserCanBlockAnother proves it with real users;
// here every connection is alice's, whoever runs the test.)
func TestSlowClientsAreBounded(t *testing.T) {
	path, _ := serve(t, &Server{PerUser: 2, ReadTimeout: 300 * time.Millisecond,
		peerOf:     func(*net.UnixConn) (uint32, error) { return 1000, nil },
		LookupUser: func(uint32) (string, error) { return "alice", nil }})
	var held []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	time.Sleep(50 * time.Millisecond)
	resp, _ := call(t, path, protocol.Request{Op: protocol.OpStatus})
	if resp.Code != protocol.CodeBusy {
		t.Errorf("third connection: %+v", resp)
	}
	// The silent ones are answered and closed once their time is up.
	for _, c := range held {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 512)
		n, _ := c.Read(buf)
		if !strings.Contains(string(buf[:n]), "reading the request") {
			t.Errorf("silent client: %q", buf[:n])
		}
		c.Close()
	}
}

func TestExitsWhenIdle(t *testing.T) {
	_, done := serve(t, &Server{Idle: 200 * time.Millisecond})
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("still serving after 5s without a connection")
	}
}

func TestNoBroker(t *testing.T) {
	_, err := call(t, filepath.Join(t.TempDir(), "none.sock"), protocol.Request{Op: protocol.OpStatus})
	if err == nil || !strings.Contains(err.Error(), "no portclaim broker is listening") {
		t.Fatal(err)
	}
}

func TestStopsWhenItsContextEnds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broker.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&Server{Idle: time.Hour}).Serve(ctx, ln) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("SIGTERM (the context) did not stop the broker")
	}
}

// TestUnnamedUIDsAreTurnedAway: a uid without a user name (a rootless
// container's subordinate uid) is answered at once and takes no place
// from the users the limits are for.
func TestUnnamedUIDsAreTurnedAway(t *testing.T) {
	path, _ := serve(t, &Server{PerUser: 1, MaxConns: 1,
		peerOf:     func(*net.UnixConn) (uint32, error) { return 200000, nil },
		LookupUser: func(uint32) (string, error) { return "", fmt.Errorf("no name") }})
	for i := 0; i < 5; i++ {
		resp, _ := call(t, path, protocol.Request{Op: protocol.OpStatus})
		if resp.Code != protocol.CodeNotAllowed || !strings.Contains(resp.Error, "uid 200000 has no user name") {
			t.Fatalf("%+v", resp)
		}
	}
}

func TestRootIsRefused(t *testing.T) {
	path, _ := serve(t, &Server{peerOf: func(*net.UnixConn) (uint32, error) { return 0, nil }})
	resp, _ := call(t, path, protocol.Request{Op: protocol.OpStatus})
	if resp.Code != protocol.CodeNotAllowed || !strings.Contains(resp.Error, "root acts without the broker") {
		t.Fatalf("%+v", resp)
	}
}

// TestAUIDIsCountedBeforeItsNameIsLookedUp: the lookup of a uid's name
// may start getent; a uid holding its share of connections gets no more
// lookups, and a failed lookup is not repeated for every connection.
func TestAUIDIsCountedBeforeItsNameIsLookedUp(t *testing.T) {
	var lookups atomic.Int32
	release := make(chan struct{})
	path, _ := serve(t, &Server{PerUser: 1, MaxConns: 4,
		peerOf: func(*net.UnixConn) (uint32, error) { return 200000, nil },
		LookupUser: func(uint32) (string, error) {
			lookups.Add(1)
			select {
			case <-release:
			case <-time.After(3 * time.Second):
			}
			return "", fmt.Errorf("no name")
		}})
	first, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	for deadline := time.Now().Add(2 * time.Second); lookups.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first connection's lookup never began")
		}
	}
	// Its one place is taken while its name is looked up.
	resp, _ := call(t, path, protocol.Request{Op: protocol.OpStatus})
	if resp.Code != protocol.CodeBusy || lookups.Load() != 1 {
		t.Fatalf("a second connection during the lookup: %+v, %d lookups; want busy, and one lookup", resp, lookups.Load())
	}
	close(release)
	first.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 512)
	if n, _ := first.Read(buf); !strings.Contains(string(buf[:n]), "has no user name") {
		t.Fatalf("first connection: %q", buf[:n])
	}
	for i := 0; i < 5; i++ {
		if resp, _ := call(t, path, protocol.Request{Op: protocol.OpStatus}); resp.Code != protocol.CodeNotAllowed {
			t.Fatalf("%+v", resp)
		}
	}
	if n := lookups.Load(); n != 1 {
		t.Errorf("%d lookups for one uid without a name; want 1", n)
	}
}

// TestABrokerForAnotherClaimsDirMakesWay: services.portclaim.claimsDir
// changed while a broker ran; it may write only where the claims were,
// so it leaves the next connection in the socket, unanswered, and exits,
// for systemd to start one for the new directory.
func TestABrokerForAnotherClaimsDirMakesWay(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs as root")
		}
		t.Skip("the policy is believed only when root's: needs root")
	}
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.json")
	write := func(claims string) {
		tmp := pol + ".tmp"
		if err := os.WriteFile(tmp, []byte(`{"version":1,"claimsDir":"`+claims+`","yield":[]}`), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, pol); err != nil {
			t.Fatal(err)
		}
	}
	write(dir + "/a")
	path, done := serve(t, &Server{Places: places.Places{PolicyPath: pol}})
	if _, err := call(t, path, protocol.Request{Op: protocol.OpStatus}); err != nil {
		t.Fatalf("status for its own directory: %v", err)
	}
	write(dir + "/b")
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte(`{"version":1,"op":"status"}` + "\n"))
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the broker went on serving another claims directory")
	}
	conn.SetReadDeadline(time.Now().Add(time.Second))
	if b, _ := io.ReadAll(conn); len(b) > 0 {
		t.Errorf("it answered for the new directory: %s", b)
	}
}

// TestAFloodOfUnnamedUidsKeepsNoNamedUserOut: uids without a name (a
// rootless container's subordinate uids, one per connection) each need a
// lookup that may wait on a network directory. Beyond MaxLookups they are
// turned away at once, holding no place, and a user the local files name
// is answered meanwhile, although every place a lookup can take is taken.
func TestAFloodOfUnnamedUidsKeepsNoNamedUserOut(t *testing.T) {
	var next atomic.Uint32
	next.Store(300000)
	var alice atomic.Bool
	release := make(chan struct{})
	var lookups atomic.Int32
	path, _ := serve(t, &Server{PerUser: 1, MaxConns: 4, MaxLookups: 2,
		peerOf: func(*net.UnixConn) (uint32, error) {
			if alice.Load() {
				return 1000, nil
			}
			return next.Add(1), nil
		},
		LocalUser: func(uid uint32) (string, bool) { return "alice", uid == 1000 },
		LookupUser: func(uint32) (string, error) {
			lookups.Add(1)
			<-release
			return "", fmt.Errorf("no name")
		}})
	defer close(release)
	// Two unnamed uids take both lookup places and wait.
	for i := 0; i < 2; i++ {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	for deadline := time.Now().Add(5 * time.Second); lookups.Load() < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d lookups began, want 2", lookups.Load())
		}
	}
	// More unnamed uids: turned away at once, no lookup begun, no place
	// kept (there are 4, and they are 6).
	for i := 0; i < 4; i++ {
		resp, _ := call(t, path, protocol.Request{Op: protocol.OpStatus})
		if resp.Code != protocol.CodeBusy || !strings.Contains(resp.Error, "looking up 2 uids without a name") {
			t.Fatalf("unnamed uid %d beyond the lookups: %+v", i, resp)
		}
	}
	if lookups.Load() != 2 {
		t.Errorf("%d lookups, want 2: the ones turned away began one", lookups.Load())
	}
	// alice, named by the local files, gets through to her request (here
	// it meets no policy: the test installs none).
	alice.Store(true)
	resp, _ := call(t, path, protocol.Request{Version: protocol.Version, Op: protocol.OpStatus})
	if resp.Code == protocol.CodeBusy || resp.Code == protocol.CodeNotAllowed || !strings.Contains(resp.Error, "no portclaim policy") {
		t.Errorf("alice during the flood: %+v", resp)
	}
}
