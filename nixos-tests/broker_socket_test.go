package e2e

import (
	"testing"
)

func init() {
	yieldTo["pc-bsock.service"] = []string{"alice"}
	yieldTo["pc-bsock.socket"] = []string{"alice"}
}

// TestTheBrokerYieldsTheSocketItAddsItself: asked for a service alone,
// the broker takes the socket that activates it into the yield; with the
// policy naming both, both are claimed and stopped, socket first, and
// the answer says so for each. (The broker's results once listed only
// the units asked for, and it died on the socket's outcome.)
func TestTheBrokerYieldsTheSocketItAddsItself(t *testing.T) {
	ctx := need(t)
	installUnit(t, ctx, "pc-bsock.service", "[Service]\nExecStart=/bin/sleep infinity\n", false)
	installUnit(t, ctx, "pc-bsock.socket", "[Socket]\nListenStream=127.0.0.1:7273\n", false)
	must(t, ctx, "root", "systemctl", "start", "pc-bsock.socket", "pc-bsock.service")
	out := ask(t, ctx, "alice", yieldRequest("pc-bsock.service", 7273))
	contains(t, "the broker's answer", out, `"ok":true`, `{"unit":"pc-bsock.service","outcome":"stopped"}`, `{"unit":"pc-bsock.socket","outcome":"stopped"}`)
	for _, u := range []string{"pc-bsock.service", "pc-bsock.socket"} {
		if s := isActive(ctx, u); s != "inactive" {
			t.Errorf("%s is %s", u, s)
		}
		if _, ok := readClaim(t, ctx, u); !ok {
			t.Errorf("%s has no claim", u)
		}
	}
}
