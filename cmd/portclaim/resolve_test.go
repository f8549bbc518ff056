package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/portclaim/portclaim/pkg/actionlog"
	"github.com/portclaim/portclaim/pkg/manifest"
)

// TestRootForAUserAsksWhateverTheManifestSays: alice's manifest (whose
// autoResolve defaults to true) must not decide that root stops what it
// names without asking; --yes does, and without a terminal root only
// reports.
func TestRootForAUserAsksWhateverTheManifestSays(t *testing.T) {
	alice := target{UID: 1000, Name: "alice", Home: "/home/alice"}
	self := target{UID: 1000, Name: "alice", Home: "/home/alice", Self: true}
	auto := manifest.Manifest{AutoResolve: true}
	cases := []struct {
		name   string
		euid   int
		tty    bool
		t      target
		m      manifest.Manifest
		cmd    resolveCmd
		ask    bool
		cannot string
	}{
		{"root for alice, terminal", 0, true, alice, auto, resolveCmd{}, true, ""},
		{"root for alice, no terminal", 0, false, alice, auto, resolveCmd{}, false, "`sudo portclaim resolve --user alice --yes` acts without asking"},
		{"root for alice, --yes", 0, false, alice, auto, resolveCmd{Yes: true}, false, ""},
		{"root for alice, dry run", 0, false, alice, auto, resolveCmd{actFlags: actFlags{DryRun: true}}, false, ""},
		{"alice, autoResolve", 1000, false, self, auto, resolveCmd{}, false, ""},
		{"alice, autoResolve off, terminal", 1000, true, self, manifest.Manifest{}, resolveCmd{}, true, ""},
		{"alice, autoResolve off, no terminal", 1000, false, self, manifest.Manifest{}, resolveCmd{}, false, "`portclaim resolve --yes` acts without asking"},
	}
	for _, c := range cases {
		a := &app{euid: c.euid, stdinTTY: c.tty}
		ask, cannot := c.cmd.consent(a, c.t, c.m)
		if ask != c.ask || (c.cannot == "") != (cannot == "") || !strings.Contains(cannot, c.cannot) {
			t.Errorf("%s: ask %v, cannot %q; want ask %v, cannot with %q", c.name, ask, cannot, c.ask, c.cannot)
		}
	}
}

// TestJournalProblemsAreShown: what the journal failed to record of
// root's actions is said, on stderr and in the JSON notes.
func TestJournalProblemsAreShown(t *testing.T) {
	var stderr bytes.Buffer
	a := &app{stderr: &stderr}
	log := &actionlog.Log{Problems: []string{"no journal is running: actions are not recorded"}}
	r := &runLog{a: a}
	if notes := r.unrecorded(log); len(notes) != 1 || !strings.Contains(stderr.String(), "no journal is running") {
		t.Errorf("notes %q, stderr %q", notes, stderr.String())
	}
	if notes := r.unrecorded(nil); notes != nil {
		t.Errorf("a nil log: %q", notes)
	}
}
