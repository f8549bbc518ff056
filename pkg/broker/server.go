package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portclaim/portclaim/pkg/actionlog"
	"github.com/portclaim/portclaim/pkg/claimstore"
	"github.com/portclaim/portclaim/pkg/places"
	"github.com/portclaim/portclaim/pkg/policy"
	"github.com/portclaim/portclaim/pkg/protocol"
	"github.com/portclaim/portclaim/pkg/yield"
)

// Server answers requests on a listening socket.
type Server struct {
	Places places.Places
	// Wait is the longest a request may wait for each job and for ports.
	Wait time.Duration
	// Idle is how long the server waits for a connection before it
	// exits; systemd starts it again on the next one.
	Idle time.Duration
	Log  *actionlog.Log
	// PerUser bounds the connections of one uid at a time, so that one
	// user cannot keep another out; MaxConns bounds them all. A
	// connection is counted by its uid before the uid's name is looked up
	// (which may start getent); a uid without a user name (a rootless
	// container's subordinate uid) is turned away then, and its failed
	// lookup remembered for a while, so that it costs no second one.
	PerUser, MaxConns int
	// ReadTimeout bounds the time a client has to send its request.
	ReadTimeout time.Duration
	// LookupUser maps a uid to its name (the system's user database);
	// it may start getent, and wait on a network directory. LocalUser
	// answers from local files, at no cost: the users it names never
	// wait for a lookup place. At most MaxLookups connections look a
	// name up at once; the next is turned away at once, its place given
	// back, so that a flood of uids without a name (the subordinate uids
	// of a rootless container, switched per connection) holds few of
	// the MaxConns places and keeps no named user out.
	LookupUser func(uid uint32) (string, error)
	LocalUser  func(uid uint32) (string, bool)
	MaxLookups int
	// peerOf says who is on the other end: SO_PEERCRED; unit tests of
	// the limits stand in a uid of their own.
	peerOf func(*net.UnixConn) (uint32, error)

	turn chan struct{} // one request acts at a time: its token
	// serving is the claims directory this broker was started for: its
	// unit lets it write there alone (ReadWritePaths=). When the policy
	// names another, it stops serving, and socket activation starts one
	// for the new directory.
	serving string
	moved   atomic.Bool
	connMu  sync.Mutex
	conns   map[uint32]int
	total   int
	unnamed map[uint32]time.Time // uids whose lookup failed, and when
	looking int                  // lookups under way
}

// Defaults for the fields left zero.
func (s *Server) defaults() {
	if s.Wait == 0 {
		s.Wait = 10 * time.Second
	}
	if s.Idle == 0 {
		s.Idle = 30 * time.Second
	}
	if s.PerUser == 0 {
		s.PerUser = 2
	}
	if s.MaxConns == 0 {
		s.MaxConns = 32
	}
	if s.ReadTimeout == 0 {
		s.ReadTimeout = 5 * time.Second
	}
	if s.LookupUser == nil {
		s.LookupUser = func(uid uint32) (string, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if name, ok := yield.LookupName(ctx, uid); ok {
				return name, nil
			}
			return "", fmt.Errorf("uid %d has no user name", uid)
		}
	}
	if s.LocalUser == nil {
		s.LocalUser = func(uid uint32) (string, bool) {
			u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
			if err != nil {
				return "", false
			}
			return u.Username, true
		}
	}
	if s.MaxLookups == 0 {
		s.MaxLookups = 4
	}
	if s.peerOf == nil {
		s.peerOf = peer
	}
	s.conns = map[uint32]int{}
	s.unnamed = map[uint32]time.Time{}
	s.turn = make(chan struct{}, 1)
}

// Serve answers connections on ln until ctx ends or no connection came
// for s.Idle while none was open.
func (s *Server) Serve(ctx context.Context, ln *net.UnixListener) error {
	s.defaults()
	if pol, _ := places.LoadPolicy(s.Places.PolicyPath); pol != nil {
		s.serving = pol.ClaimsDir
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		// On SIGTERM (systemd stopping it) the accept below ends now, not
		// at its idle deadline.
		select {
		case <-ctx.Done():
			ln.SetDeadline(time.Now())
		case <-stop:
		}
	}()
	for {
		if ctx.Err() != nil || s.moved.Load() {
			return nil
		}
		if err := ln.SetDeadline(time.Now().Add(s.Idle)); err != nil {
			return err
		}
		// A connection waits in the socket until this broker knows it
		// may answer it: one for another claims directory leaves it
		// there, for the broker systemd starts next.
		err := pending(ctx, ln, s.Idle)
		if err == nil && s.movedAway() {
			return nil
		}
		var conn *net.UnixConn
		if err == nil {
			conn, err = ln.AcceptUnix()
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if ctx.Err() != nil || s.open() == 0 {
					return nil // idle: exit, systemd keeps the socket
				}
				continue
			}
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if ctx.Err() != nil {
			conn.Close()
			return nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.handle(ctx, conn)
		}()
	}
}

// pending waits until a connection is there to accept, without
// accepting it, until ctx ends or idle passes (a timeout error then, as
// the listener's deadline gives Accept). The listener's own wait cannot
// leave the connection in the socket, so this one polls the socket, a
// slice at a time to notice ctx.
func pending(ctx context.Context, ln *net.UnixListener, idle time.Duration) error {
	raw, err := ln.SyscallConn()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(idle)
	for ctx.Err() == nil {
		wait := min(time.Until(deadline), 200*time.Millisecond)
		if wait <= 0 {
			return os.ErrDeadlineExceeded
		}
		var n int
		var perr error
		if err := raw.Control(func(fd uintptr) {
			n, perr = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(wait.Milliseconds())+1)
		}); err != nil {
			return err
		}
		if perr != nil && !errors.Is(perr, unix.EINTR) {
			return perr
		}
		if n > 0 {
			return nil
		}
	}
	return os.ErrDeadlineExceeded
}

// movedAway reports whether the policy names another claims directory
// than the one this broker serves: services.portclaim.claimsDir changed.
func (s *Server) movedAway() bool {
	pol, _ := places.LoadPolicy(s.Places.PolicyPath)
	if pol == nil || s.serving == "" || pol.ClaimsDir == s.serving {
		return false
	}
	s.moved.Store(true)
	return true
}

func (s *Server) open() int {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	return s.total
}

func (s *Server) handle(ctx context.Context, conn *net.UnixConn) {
	defer conn.Close()
	uid, err := s.peerOf(conn)
	if err != nil {
		return
	}
	conn.SetDeadline(time.Now().Add(s.ReadTimeout))
	if uid == 0 {
		s.reply(conn, protocol.Response{Version: protocol.Version, Code: protocol.CodeNotAllowed, Error: "root acts without the broker: run `portclaim resolve --user NAME` (or release)"})
		return
	}
	// Counted before anything else is done for it: the lookup below may
	// start a process (getent), and no uid may start more than its share.
	if why := s.admit(uid); why != "" {
		s.reply(conn, protocol.Response{Version: protocol.Version, Code: protocol.CodeBusy, Error: why})
		return
	}
	name, busy := s.nameOf(uid)
	if busy {
		s.leave(uid)
		s.reply(conn, protocol.Response{Version: protocol.Version, Code: protocol.CodeBusy,
			Error: fmt.Sprintf("the broker is looking up %d uids without a name in the system's user database; try again", s.MaxLookups)})
		return
	}
	if name == "" {
		s.leave(uid) // it holds no place while it is answered
		s.reply(conn, protocol.Response{Version: protocol.Version, Code: protocol.CodeNotAllowed, Error: fmt.Sprintf("uid %d has no user name in the system's user database", uid)})
		return
	}
	defer s.leave(uid)
	conn.SetReadDeadline(time.Now().Add(s.ReadTimeout))
	var req protocol.Request
	dec := json.NewDecoder(io.LimitReader(conn, maxRequest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		s.reply(conn, protocol.Response{Version: protocol.Version, Code: protocol.CodeBadRequest, Error: "reading the request: " + err.Error()})
		return
	}
	s.reply(conn, s.answer(ctx, uid, name, req, conn))
}

func (s *Server) reply(conn *net.UnixConn, r protocol.Response) {
	r.OK = r.Error == ""
	conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	data, _ := json.Marshal(r)
	_, _ = conn.Write(append(data, '\n')) // a client gone has nobody to tell
}

// answer checks who asks and what, then acts.
func (s *Server) answer(ctx context.Context, uid uint32, name string, req protocol.Request, conn *net.UnixConn) protocol.Response {
	fail := func(code, format string, args ...any) protocol.Response {
		return protocol.Response{Version: protocol.Version, Code: code, Error: fmt.Sprintf(format, args...)}
	}
	// unchanged is a failure before anything was changed, which its
	// text says (yield.ActError).
	unchanged := func(code, format string, args ...any) protocol.Response {
		return protocol.Response{Version: protocol.Version, Code: code, Error: protocol.Unchanged(fmt.Errorf(format, args...)).Error()}
	}
	if req.Version != protocol.Version {
		return fail(protocol.CodeBadRequest, "protocol version %d; this broker speaks %d (update portclaim on one side)", req.Version, protocol.Version)
	}
	wait := s.Wait
	if req.WaitMS > 0 && req.WaitMS < wait.Milliseconds() {
		wait = time.Duration(req.WaitMS) * time.Millisecond
	}
	switch {
	case req.Op == protocol.OpYield && req.Yield != nil && req.Release == nil:
		if err := req.Yield.Check(); err != nil {
			return fail(protocol.CodeBadRequest, "%v", err)
		}
	case req.Op == protocol.OpRelease && req.Release != nil && req.Yield == nil:
		if err := req.Release.Check(); err != nil {
			return fail(protocol.CodeBadRequest, "%v", err)
		}
	case req.Op == protocol.OpStatus && req.Yield == nil && req.Release == nil:
	default:
		return fail(protocol.CodeBadRequest, "op %q with these fields is not a request (yield, release or status)", req.Op)
	}
	pol, problem := places.LoadPolicy(s.Places.PolicyPath)
	if pol == nil {
		return unchanged(protocol.CodeFailed, "%s", problem)
	}
	if s.serving != "" && pol.ClaimsDir != s.serving {
		// This broker may write only where the claims were: a fresh one
		// answers for the new directory.
		s.moved.Store(true)
		return unchanged(protocol.CodeBusy, "the policy's claims directory changed to %s, and this broker served %s: it makes way for a new one; ask again", pol.ClaimsDir, s.serving)
	}
	if req.Op == protocol.OpStatus {
		return protocol.Response{Version: protocol.Version, User: name, Status: status(claimstore.Store{Dir: places.ClaimsDir(pol, s.Places.ServedNote)}, pol, name)}
	}

	// One request acts at a time. The wait for a turn has its deadline;
	// then the wait for the store's lock (reconcile or root mode may hold
	// it) and the reads have theirs. SIGTERM ends either, before anything
	// is changed. Once package yield has a plan, its changes run to their
	// end, or are undone, on a budget of their own (Wait for each unit
	// planned): neither SIGTERM, nor a deadline, nor the client leaving
	// cuts them short and leaves units down half way.
	budget := requestBudget(wait, req)
	turn, cancelTurn := context.WithTimeout(ctx, budget)
	defer cancelTurn()
	select {
	case s.turn <- struct{}{}:
		defer func() { <-s.turn }()
	case <-turn.Done():
		if ctx.Err() != nil {
			return unchanged(protocol.CodeBusy, "the broker is stopping")
		}
		return unchanged(protocol.CodeBusy, "the broker was busy with other requests for too long")
	}
	if gone(conn) {
		// The client gave up while it waited: it reported a failure, so
		// nothing may happen in its name now.
		return unchanged(protocol.CodeFailed, "the client left before its turn")
	}
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	svc, closeBus, err := yield.New(ctx, yield.Config{Places: s.Places, Dir: pol.ClaimsDir, Policy: pol, Wait: wait, Log: s.Log})
	if err != nil {
		return fail(protocol.CodeFailed, "%v", err)
	}
	defer closeBus()
	act := svc.ActFor(name, uid)
	resp := protocol.Response{Version: protocol.Version, User: name}
	if req.Op == protocol.OpYield {
		res, err := act.Yield(ctx, *req.Yield)
		if err != nil {
			return fail(protocol.CodeFailed, "%v", err)
		}
		resp.Yield = &res
		return resp
	}
	res, err := act.Release(ctx, *req.Release)
	if err != nil {
		return fail(protocol.CodeFailed, "%v", err)
	}
	resp.Release = &res
	return resp
}

// gone reports whether the client closed its connection: it has sent its
// request and waits for the answer, so a read finds at most what followed
// the request (its newline) unless the client is gone.
func gone(conn *net.UnixConn) bool {
	conn.SetReadDeadline(time.Now().Add(time.Millisecond))
	defer conn.SetReadDeadline(time.Time{})
	var b [1]byte
	n, err := conn.Read(b[:])
	var ne net.Error
	switch {
	case n > 0, errors.As(err, &ne) && ne.Timeout():
		return false
	}
	return err != nil
}

// requestBudget is how long one request may wait for its turn, and then,
// once more, for the store's lock and its reads: about what another
// request's jobs take. Its changes have a budget of their own
// (package yield sets it once they are planned).
func requestBudget(wait time.Duration, req protocol.Request) time.Duration {
	n := 4
	if req.Yield != nil {
		n += 2 * len(req.Yield.Units)
	}
	if req.Release != nil {
		n += 2 * len(req.Release.Units)
		if req.Release.All {
			n += 16
		}
	}
	return min(time.Duration(n)*wait+10*time.Second, 5*time.Minute)
}

func status(store claimstore.Store, pol *policy.Policy, name string) *protocol.Status {
	st := &protocol.Status{Allowed: []string{}, Claims: []protocol.Record{}}
	for unit, users := range pol.Yield {
		if slices.Contains(users, name) {
			st.Allowed = append(st.Allowed, unit)
		}
	}
	sort.Strings(st.Allowed)
	entries, err := store.List(name)
	if err != nil {
		st.Claims = append(st.Claims, protocol.Record{Problem: err.Error()})
	}
	for _, e := range entries {
		r := protocol.Record{Unit: e.Unit, Releasing: e.Releasing, Problem: e.Problem}
		if e.Problem == "" {
			c := e.Claim
			r.Service, r.ClaimedAt, r.Method, r.Prior, r.With = c.Service, c.ClaimedAt, c.Method, &c.Prior, c.With
		}
		st.Claims = append(st.Claims, r)
	}
	return st
}
