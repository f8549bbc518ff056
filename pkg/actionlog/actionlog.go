// Package actionlog records every action portclaim takes on a system unit
// in the journal, with structured fields: PORTCLAIM_ACTION (claim, stop,
// start, unclaim, mask, unmask, refuse, defer), PORTCLAIM_UNIT,
// PORTCLAIM_USER (whose claim), PORTCLAIM_PORT, PORTCLAIM_RESULT.
// `journalctl PORTCLAIM_UNIT=ollama.service` shows a unit's history. Only
// the root side acts, so only the journal records: no file in anyone's
// home is ever opened for it.
package actionlog

import (
	"fmt"
	"strings"

	"github.com/coreos/go-systemd/v22/journal"

	"github.com/portclaim/portclaim/pkg/endpoint"
)

// Log is where records go. A nil *Log records nothing.
type Log struct {
	send func(msg string, pri journal.Priority, fields map[string]string) error
	// Problems collects failures to record, each said once, for the
	// caller to show after acting: the action matters more than its
	// record.
	Problems []string
}

// Entry is one action.
type Entry struct {
	Action string
	Unit   string
	User   string
	Ports  []endpoint.Endpoint
	Result string // done, failed, timeout, refused, deferred, ...
	Msg    string
}

// Journal records to the journal, where one runs.
func Journal() *Log {
	if !journal.Enabled() {
		return &Log{Problems: []string{"no journal is running: actions are not recorded"}}
	}
	return &Log{send: journal.Send}
}

// Add records e.
func (l *Log) Add(e Entry) {
	if l == nil || l.send == nil {
		return
	}
	pri := journal.PriInfo
	if e.Result != "done" {
		pri = journal.PriWarning
	}
	msg := fmt.Sprintf("%s %s for %s: %s", e.Action, e.Unit, e.User, e.Result)
	if e.Msg != "" {
		msg += " (" + e.Msg + ")"
	}
	err := l.send(msg, pri, map[string]string{
		"SYSLOG_IDENTIFIER": "portclaim",
		"PORTCLAIM_ACTION":  e.Action,
		"PORTCLAIM_UNIT":    e.Unit,
		"PORTCLAIM_USER":    e.User,
		"PORTCLAIM_PORT":    strings.ReplaceAll(endpoint.PortList(e.Ports), ", ", ","), // "11434/tcp,6333/tcp"
		"PORTCLAIM_RESULT":  e.Result,
	})
	if err != nil {
		l.Problems = append(l.Problems, fmt.Sprintf("recording in the journal failed (%v): the actions after it are not recorded", err))
		l.send = nil
	}
}
