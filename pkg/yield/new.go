package yield

import (
	"context"
	"errors"
	"time"

	"github.com/portclaim/portclaim/pkg/actionlog"
	"github.com/portclaim/portclaim/pkg/claimstore"
	"github.com/portclaim/portclaim/pkg/gather"
	"github.com/portclaim/portclaim/pkg/plan"
	"github.com/portclaim/portclaim/pkg/policy"
	"github.com/portclaim/portclaim/pkg/systemd"
)

// Actor makes a user's claimed units yield and gives them back. There
// are two: the broker's client (package broker), which asks root's
// broker for the user who runs it, and root in process (ActFor), which
// acts on root's own authority for the user root names. resolve and
// release get one and call it, whichever it is.
type Actor interface {
	Yield(ctx context.Context, req YieldRequest) (YieldResult, error)
	Release(ctx context.Context, req ReleaseRequest) (ReleaseResult, error)
}

// Config is what sets the root side's three services apart: the
// broker's and reconcile's act on the policy's word (Policy), root
// mode's on root's (Root).
type Config struct {
	Places gather.Places
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
		return nil, nil, Unchanged(err)
	}
	s := &Service{Store: claimstore.Store{Dir: c.Dir}, Authority: plan.Authority{Root: c.Root, Policy: c.Policy}, Sys: sys,
		Places: c.Places, Note: c.Places.ServedNote, Wait: c.Wait, Log: c.Log}
	if !c.Root {
		path := c.Places.PolicyPath
		s.Policy = func() (*policy.Policy, string) { return gather.LoadPolicy(path) }
	}
	return s, closeBus, nil
}

// ActFor is s acting for user (uid: whose sockets count as the user's
// own): root in process, as root mode asks. Its errors are ActErrors.
func (s *Service) ActFor(user string, uid uint32) Actor {
	return forUser{s: s, user: user, uid: uid}
}

type forUser struct {
	s    *Service
	user string
	uid  uint32
}

func (f forUser) Yield(ctx context.Context, req YieldRequest) (YieldResult, error) {
	res, err := f.s.Yield(ctx, f.user, f.uid, req)
	return res, Failure(err)
}

func (f forUser) Release(ctx context.Context, req ReleaseRequest) (ReleaseResult, error) {
	res, err := f.s.Release(ctx, f.user, req)
	return res, Failure(err)
}

// ActError is a yield or a release that failed, and whether it had
// changed anything by then. Its text is the one place that says
// "nothing was changed": the broker's answers, root mode's errors and a
// missing broker all say it through this type, never by hand.
type ActError struct {
	Err     error
	Changed bool
}

func (e *ActError) Error() string {
	if e.Changed {
		return e.Err.Error()
	}
	return e.Err.Error() + "; nothing was changed"
}

func (e *ActError) Unwrap() error { return e.Err }

// Unchanged is err, which came before anything was changed, as an
// ActError (nil stays nil).
func Unchanged(err error) error {
	if err == nil {
		return nil
	}
	return &ActError{Err: err}
}

// Failure is an error of Service.Yield or Service.Release as an
// ActError: it changed something only when it is a PartialError (the
// user's earlier releases were finished first). An ActError, or nil,
// stays as it is.
func Failure(err error) error {
	var ae *ActError
	if err == nil || errors.As(err, &ae) {
		return err
	}
	return &ActError{Err: err, Changed: !NothingChanged(err)}
}
