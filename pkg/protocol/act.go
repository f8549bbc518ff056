package protocol

import "context"

// Actor makes a user's claimed units yield and gives them back. There
// are two: the broker's client (package broker), which asks root's
// broker for the user who runs it, and root in process (package yield's
// Service.ActFor), which acts on root's own authority for the user root
// names. resolve and release get one and call it, whichever it is.
type Actor interface {
	Yield(ctx context.Context, req YieldRequest) (YieldResult, error)
	Release(ctx context.Context, req ReleaseRequest) (ReleaseResult, error)
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
