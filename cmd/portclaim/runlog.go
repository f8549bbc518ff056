package main

import (
	"fmt"
	"strings"

	"github.com/portclaim/portclaim/pkg/actionlog"
)

// runLog is what an acting command says: on stdout (results) and stderr
// (warnings, errors), or with JSON only in the document; every line is
// kept for the last-run record.
type runLog struct {
	a       *app
	json    bool
	verbose bool
	dryRun  bool
	lines   []string
}

// record keeps what was said for the last-run record, a line each.
func (r *runLog) record(prefix, msg string) {
	for i, l := range strings.Split(msg, "\n") {
		if i == 0 {
			l = prefix + l
		}
		r.lines = append(r.lines, l)
	}
}

func (r *runLog) printf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	r.record("", line)
	if !r.json {
		fmt.Fprintln(r.a.stdout, line)
	}
}

func (r *runLog) verbosef(format string, args ...any) {
	if r.verbose {
		r.printf(format, args...)
	}
}

func (r *runLog) warnf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	r.record("warning: ", line)
	if !r.json {
		r.a.warnf("%s", line)
	}
}

func (r *runLog) notef(format string, args ...any) {
	if !r.json {
		r.a.notef(format, args...)
	}
}

// unrecorded warns of the actions root took that the journal did not
// record, and returns the warnings for the JSON document's notes.
func (r *runLog) unrecorded(l *actionlog.Log) []string {
	if l == nil {
		return nil
	}
	for _, p := range l.Problems {
		r.warnf("%s", p)
	}
	return l.Problems
}

func (r *runLog) errorf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	r.record("error: ", line)
	if !r.json {
		r.a.errorf(line, "")
	}
}
