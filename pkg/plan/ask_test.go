package plan

import (
	"strings"
	"testing"
)

// TestRootForAUserAsksWhateverTheManifestSays: alice's manifest (whose
// autoResolve defaults to true) must not decide that root stops what it
// names without asking; --yes does, and without a terminal root only
// reports. The user's own autoResolve decides for the user.
func TestRootForAUserAsksWhateverTheManifestSays(t *testing.T) {
	cases := []struct {
		name   string
		in     Asking
		ask    bool
		cannot string
	}{
		{"root for alice, terminal", Asking{User: "alice", Root: true, AutoResolve: true, Terminal: true}, true, ""},
		{"root for alice, no terminal", Asking{User: "alice", Root: true, AutoResolve: true}, false, "`sudo portclaim resolve --user alice --yes` acts without asking"},
		{"root for alice, --yes", Asking{User: "alice", Root: true, AutoResolve: true, Yes: true}, false, ""},
		{"root for alice, dry run", Asking{User: "alice", Root: true, AutoResolve: true, DryRun: true}, false, ""},
		{"alice, autoResolve", Asking{User: "alice", AutoResolve: true}, false, ""},
		{"alice, autoResolve off, terminal", Asking{User: "alice", Terminal: true}, true, ""},
		{"alice, autoResolve off, no terminal", Asking{User: "alice"}, false, "`portclaim resolve --yes` acts without asking"},
		{"alice, autoResolve off, --yes", Asking{User: "alice", Yes: true}, false, ""},
	}
	for _, c := range cases {
		ask, cannot := Consent(c.in)
		if ask != c.ask || (c.cannot == "") != (cannot == "") || !strings.Contains(cannot, c.cannot) {
			t.Errorf("%s: ask %v, cannot %q; want ask %v, cannot with %q", c.name, ask, cannot, c.ask, c.cannot)
		}
	}
}
