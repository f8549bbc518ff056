package yield

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/portclaim/portclaim/pkg/plan"
	"github.com/portclaim/portclaim/pkg/protocol"
)

// TestNothingWasChangedIsSaidOnceAndOnlyWhenSo: an act's failure says
// "nothing was changed" when it came before any change, once, however
// often it is classified; a yield that had finished earlier releases
// first does not say it.
func TestNothingWasChangedIsSaidOnceAndOnlyWhenSo(t *testing.T) {
	plain := errors.New("reading the facts: timeout")
	partial := &PartialError{Err: plain, Done: []string{"your earlier release of a.service was finished first"}}
	for _, c := range []struct {
		err     error
		nothing bool
	}{
		{Failure(plain), true},
		{Failure(Failure(plain)), true},
		{protocol.Unchanged(plain), true},
		{Failure(protocol.Unchanged(plain)), true},
		{Failure(fmt.Errorf("wrapped: %w", partial)), false},
	} {
		got := c.err.Error()
		if n := strings.Count(got, "nothing was changed"); n != map[bool]int{true: 1, false: 0}[c.nothing] {
			t.Errorf("%q says \"nothing was changed\" %d times", got, n)
		}
		var ae *protocol.ActError
		if !errors.As(c.err, &ae) || ae.Changed == c.nothing || !errors.Is(c.err, plain) {
			t.Errorf("%q: not an ActError that says whether anything changed and wraps its cause", got)
		}
	}
	if Failure(nil) != nil || protocol.Unchanged(nil) != nil {
		t.Error("no error became one")
	}
}

// TestRootInProcessSaysWhetherAnythingChanged: root mode's actor fails a
// request it cannot take before anything is read, and says that nothing
// was changed.
func TestRootInProcessSaysWhetherAnythingChanged(t *testing.T) {
	act := (&Service{Authority: plan.Authority{Root: true}}).ActFor("alice", 1000)
	_, yerr := act.Yield(context.Background(), protocol.YieldRequest{Service: "x", Units: []string{"poweroff.target"}})
	_, rerr := act.Release(context.Background(), protocol.ReleaseRequest{})
	for _, err := range []error{yerr, rerr} {
		var ae *protocol.ActError
		if !errors.As(err, &ae) || ae.Changed || !strings.HasSuffix(err.Error(), "; nothing was changed") {
			t.Errorf("%v: want an ActError that changed nothing", err)
		}
	}
}
