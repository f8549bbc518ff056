package actionlog

import (
	"errors"
	"testing"

	"github.com/coreos/go-systemd/v22/journal"

	"github.com/portclaim/portclaim/pkg/endpoint"
)

func TestFields(t *testing.T) {
	var got map[string]string
	var msg string
	l := &Log{send: func(m string, _ journal.Priority, f map[string]string) error { msg, got = m, f; return nil }}
	l.Add(Entry{Action: "stop", Unit: "ollama.service", User: "alice", Result: "done",
		Ports: []endpoint.Endpoint{{Proto: endpoint.TCP, Port: 11434}, {Proto: endpoint.UDP, Port: 53}}})
	if msg != "stop ollama.service for alice: done" || got["PORTCLAIM_PORT"] != "11434/tcp,53/udp" || got["PORTCLAIM_USER"] != "alice" || got["SYSLOG_IDENTIFIER"] != "portclaim" {
		t.Errorf("%q %v", msg, got)
	}
}

func TestAFailingJournalIsReportedOnce(t *testing.T) {
	calls := 0
	l := &Log{send: func(string, journal.Priority, map[string]string) error { calls++; return errors.New("gone") }}
	l.Add(Entry{Action: "stop"})
	l.Add(Entry{Action: "start"})
	if calls != 1 || len(l.Problems) != 1 {
		t.Errorf("%d sends, problems %q", calls, l.Problems)
	}
	var none *Log
	none.Add(Entry{}) // a nil log records nothing, and does not fail
}
