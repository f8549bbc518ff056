package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/portclaim/portclaim/pkg/actionlog"
)

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
