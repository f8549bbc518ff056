package yield

import (
	"context"
	"errors"
	"time"

	"github.com/portclaim/portclaim/pkg/actionlog"
	"github.com/portclaim/portclaim/pkg/claimstore"
	"github.com/portclaim/portclaim/pkg/places"
	"github.com/portclaim/portclaim/pkg/plan"
	"github.com/portclaim/portclaim/pkg/policy"
	"github.com/portclaim/portclaim/pkg/protocol"
	"github.com/portclaim/portclaim/pkg/systemd"
)

// Config is what sets the root side's three services apart: the
// broker's and reconcile's act on the policy's word (Policy), root
// mode's on root's (Root).
type Config struct {
	Places places.Places
	// Dir is the claims directory acted on.
	Dir string
	// Policy is the authority of the broker and reconcile (nil: no
	// policy, so nothing may yield); Root, that of root mode.
	Policy *policy.Policy
	Root   bool
	Wait   time.Duration // for each job, and for ports to change hands
	Log    *actionlog.Log
}

// New is the one constructor of the root side's service, for the
// broker, root mode and reconcile. It connects to the system manager,
// with the handshake bounded by ctx and the connection lasting until
// close: once a yield or release has begun, it finishes, or rolls back,
// on its own budget. A service on the policy's word reads the policy
// again once it holds the store's lock (a request that waited for
// another must act on the policy of now: a switch may have revoked it).
func New(ctx context.Context, c Config) (*Service, func(), error) {
	sys, closeBus, err := systemd.SystemOutliving(ctx)
	if err != nil {
		return nil, nil, protocol.Unchanged(err)
	}
	s := &Service{Store: claimstore.Store{Dir: c.Dir}, Authority: plan.Authority{Root: c.Root, Policy: c.Policy}, Sys: sys,
		Places: c.Places, Note: c.Places.ServedNote, Wait: c.Wait, Log: c.Log}
	if !c.Root {
		path := c.Places.PolicyPath
		s.Policy = func() (*policy.Policy, string) { return places.LoadPolicy(path) }
	}
	return s, closeBus, nil
}

// ActFor is s acting for user (uid: whose sockets count as the user's
// own): root in process, as root mode asks. Its errors are ActErrors.
func (s *Service) ActFor(user string, uid uint32) protocol.Actor {
	return forUser{s: s, user: user, uid: uid}
}

type forUser struct {
	s    *Service
	user string
	uid  uint32
}

func (f forUser) Yield(ctx context.Context, req protocol.YieldRequest) (protocol.YieldResult, error) {
	res, err := f.s.Yield(ctx, f.user, f.uid, req)
	return res, Failure(err)
}

func (f forUser) Release(ctx context.Context, req protocol.ReleaseRequest) (protocol.ReleaseResult, error) {
	res, err := f.s.Release(ctx, f.user, req)
	return res, Failure(err)
}

// Failure is an error of Service.Yield or Service.Release as an
// ActError: it changed something only when it is a PartialError (the
// user's earlier releases were finished first). An ActError, or nil,
// stays as it is.
func Failure(err error) error {
	var ae *protocol.ActError
	if err == nil || errors.As(err, &ae) {
		return err
	}
	return &protocol.ActError{Err: err, Changed: !NothingChanged(err)}
}
