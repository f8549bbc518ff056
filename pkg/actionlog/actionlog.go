// Package actionlog writes down every action portclaim takes: to the journal
// with structured fields (PORTCLAIM_UNIT=, PORTCLAIM_PORT=,
// PORTCLAIM_ACTION=, PORTCLAIM_RESULT=; `journalctl PORTCLAIM_UNIT=ollama.service`)
// and to $XDG_STATE_HOME/portclaim/portclaim.log.
package actionlog

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/journal"

	"github.com/portclaim/portclaim/pkg/endpoint"
)

// Log is where records go. The zero value records nothing.
type Log struct {
	file    *os.File
	journal bool
	// Problems collects failures to record, for the caller to show once.
	Problems []string
}

// Entry is one action.
type Entry struct {
	Action string // stop, start, claim, unclaim, mask, unmask, refuse, defer
	Unit   string
	Ports  []endpoint.Endpoint
	Result string // done, failed, timeout, denied, skipped, ...
	Msg    string
}

// StateDir is $XDG_STATE_HOME/portclaim, by default ~/.local/state/portclaim.
func StateDir() string {
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" || !filepath.IsAbs(base) {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		base = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(base, "portclaim")
}

// Open starts recording to dir/portclaim.log (created 0700 if missing)
// and to the journal where one is running. A failure to open the file is
// kept in Problems, not fatal: the action matters more than its record.
func Open(dir string) *Log {
	l := &Log{journal: journal.Enabled()}
	if dir == "" {
		l.Problems = append(l.Problems, "no state directory (no $HOME?): actions are not logged to a file")
		return l
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		l.Problems = append(l.Problems, fmt.Sprintf("cannot create %s: %v", dir, err))
		return l
	}
	f, err := os.OpenFile(filepath.Join(dir, "portclaim.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		l.Problems = append(l.Problems, fmt.Sprintf("cannot open the log: %v", err))
		return l
	}
	l.file = f
	return l
}

// Close closes the log file.
func (l *Log) Close() {
	if l != nil && l.file != nil {
		l.file.Close()
	}
}

// Add records e in both places.
func (l *Log) Add(e Entry) {
	if l == nil {
		return
	}
	ports := portList(e.Ports)
	if l.file != nil {
		fmt.Fprintf(l.file, "%s action=%s unit=%s ports=%s result=%s msg=%s\n",
			time.Now().UTC().Format(time.RFC3339), e.Action, e.Unit, ports, e.Result, strconv.Quote(e.Msg))
	}
	if l.journal {
		pri := journal.PriInfo
		if e.Result != "done" && e.Result != "skipped" {
			pri = journal.PriWarning
		}
		err := journal.Send(fmt.Sprintf("%s %s: %s (%s)", e.Action, e.Unit, e.Result, e.Msg), pri, map[string]string{
			"SYSLOG_IDENTIFIER": "portclaim",
			"PORTCLAIM_ACTION":  e.Action,
			"PORTCLAIM_UNIT":    e.Unit,
			"PORTCLAIM_PORT":    ports,
			"PORTCLAIM_RESULT":  e.Result,
		})
		if err != nil {
			l.Problems = append(l.Problems, fmt.Sprintf("journal: %v", err))
			l.journal = false
		}
	}
}

func portList(eps []endpoint.Endpoint) string {
	var out []string
	for _, e := range eps {
		out = append(out, fmt.Sprintf("%d/%s", e.Port, e.Proto))
	}
	return strings.Join(out, ",")
}
