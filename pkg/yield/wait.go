package yield

import (
	"context"
	"fmt"
	"time"

	"github.com/portclaim/portclaim/pkg/attribute"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/holder"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/protocol"
	"github.com/portclaim/portclaim/pkg/sockets"
)

// portWait bounds how long a yield waits for ports after its stops are
// done: systemd has killed the units' processes by then, and the kernel
// closes their sockets at once. A socket still there is someone else's,
// to report, not to wait for while every other user waits behind the lock.
const portWait = 2 * time.Second

// waitFree waits, briefly, until no socket of another uid than the
// user's overlaps the ports (the user's own are theirs to hold). It polls
// the socket table alone, and names the holder (a scan of /proc) once, if
// one is left.
func (s *Service) waitFree(ctx context.Context, res protocol.YieldResult, req protocol.YieldRequest, uid uint32) protocol.YieldResult {
	deadline := time.Now().Add(min(s.Wait, portWait))
	for {
		sock, want, err := s.inTheWay(req.Ports, uid)
		if err != nil || sock == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return s.held(res, sock, want, uid, err)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

// portsNow records who holds the ports at this moment.
func (s *Service) portsNow(res protocol.YieldResult, req protocol.YieldRequest, uid uint32) protocol.YieldResult {
	sock, want, err := s.inTheWay(req.Ports, uid)
	return s.held(res, sock, want, uid, err)
}

// held records in res who holds the ports: sock in the way of want (as
// the caller uid may learn it), or the error reading them.
func (s *Service) held(res protocol.YieldResult, sock *host.Socket, want endpoint.Endpoint, uid uint32, err error) protocol.YieldResult {
	switch {
	case err != nil:
		res.HeldBy = err.Error()
	case sock != nil:
		res.HeldBy = fmt.Sprintf("%s is held at %s by %s", want.PortProto(), sock.Endpoint, s.describe(*sock, uid))
	default:
		res.HeldBy = ""
	}
	res.PortsFree = res.HeldBy == ""
	return res
}

// inTheWay finds the first socket of another uid than uid on ports, and
// the port it is in the way of; nil when there is none.
func (s *Service) inTheWay(ports []endpoint.Endpoint, uid uint32) (*host.Socket, endpoint.Endpoint, error) {
	socks, err := s.sockets(ports)
	if err != nil {
		return nil, endpoint.Endpoint{}, err
	}
	for _, want := range ports {
		for i, sock := range socks {
			if endpoint.Overlap(want, sock.Endpoint) && sock.UID != uid {
				return &socks[i], want, nil
			}
		}
	}
	return nil, endpoint.Endpoint{}, nil
}

func (s *Service) sockets(ports []endpoint.Endpoint) ([]host.Socket, error) {
	var nums []uint16
	for _, p := range ports {
		nums = append(nums, p.Port)
	}
	tab, err := sockets.Read(s.Places.ProcRoot, sockets.Around(nums, 0)...)
	return tab.Sockets, err
}

// describe names who holds a socket for whoever asked. Root (root mode)
// sees everything. A user asking the broker learns of a socket only what
// they could learn themselves: root's system unit by name (systemd tells
// anyone which unit runs), their own unit by the socket's cgroup (the
// broker, without the capability to read users' open files, could only
// guess the process; the client names it), and of anyone else's socket
// its uid alone: with /proc mounted hidepid, they could not see more.
func (s *Service) describe(sock host.Socket, caller uint32) string {
	var h *holder.Holder // as `portclaim who` attributes it
	if one := attribute.New(s.Places).One(sock, nil); one.Known() {
		h = &one
	}
	switch {
	case h == nil:
		return fmt.Sprintf("a process of uid %d", sock.UID)
	case s.Authority.Root:
		return h.Describe(attribute.NameOf)
	case h.Unit.Name != "" && (sock.UID == caller || sock.UID == 0 && !h.Unit.User):
		named := *h
		named.PID, named.Command = 0, "" // known by its unit alone
		return named.Describe(attribute.NameOf)
	}
	return fmt.Sprintf("a socket of uid %d", sock.UID)
}
