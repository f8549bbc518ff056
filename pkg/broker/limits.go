// The broker's limits on connections: each uid's share and the total,
// the lookups of uids' names, and who the kernel says is asking.
package broker

import (
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portclaim/portclaim/pkg/policy"
)

// unnamedFor is how long a failed lookup of a uid stands: the broker
// exits when idle, and a user added meanwhile waits at most this long.
const unnamedFor = time.Minute

// admit counts a connection of uid, or says why it is refused.
func (s *Server) admit(uid uint32) string {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	switch {
	case s.conns[uid] >= s.PerUser:
		return fmt.Sprintf("uid %d has %d requests open already; try again", uid, s.PerUser)
	case s.total >= s.MaxConns:
		return fmt.Sprintf("the broker has %d requests open; try again", s.MaxConns)
	}
	s.conns[uid]++
	s.total++
	return ""
}

func (s *Server) leave(uid uint32) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.conns[uid]--; s.conns[uid] == 0 {
		delete(s.conns, uid)
	}
	s.total--
}

// nameOf is uid's user name, "" for none; a failed lookup is remembered
// for unnamedFor. busy: no lookup place was free (MaxLookups), so none
// was made.
func (s *Server) nameOf(uid uint32) (name string, busy bool) {
	if n, ok := s.LocalUser(uid); ok && policy.ValidUser(n) {
		return n, false
	}
	s.connMu.Lock()
	at, failed := s.unnamed[uid]
	if failed && time.Since(at) < unnamedFor {
		s.connMu.Unlock()
		return "", false
	}
	if s.looking >= s.MaxLookups {
		s.connMu.Unlock()
		return "", true
	}
	s.looking++
	s.connMu.Unlock()
	n, err := s.LookupUser(uid)
	s.connMu.Lock()
	defer s.connMu.Unlock()
	s.looking--
	if err == nil && policy.ValidUser(n) {
		return n, false
	}
	if len(s.unnamed) >= 4096 {
		clear(s.unnamed) // a bound on what a flood of uids can make it remember
	}
	s.unnamed[uid] = time.Now()
	return "", false
}

// peer is who the kernel says is on the other end.
func peer(conn *net.UnixConn) (uint32, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if credErr != nil {
		return 0, credErr
	}
	return cred.Uid, nil
}
