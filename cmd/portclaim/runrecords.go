package main

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/portclaim/portclaim/pkg/lastrun"
	"github.com/portclaim/portclaim/pkg/report"
	"github.com/portclaim/portclaim/pkg/safeopen"
)

// recordRun records a run of resolve or release for `portclaim status`:
// the user's own in their state directory; root's for a user in root's
// place.
func (a *app) recordRun(r *runLog, t target, src report.Manifest, command string, code, left int) {
	summary := fmt.Sprintf("%d conflict%s left", left, plural(left))
	if left == 0 {
		summary = "nothing left to do"
	}
	rec := lastrun.Record{Command: command, Time: time.Now().UTC(), Manifest: src.String(), Exit: code, Conflicts: left, Summary: summary, Lines: r.lines}
	var err error
	switch {
	case t.Root(a):
		rec.By = "root"
		err = lastrun.WriteRoot(a.places.RootRuns, t.Name, t.UID, rec)
	case t.Self && a.euid != 0:
		var since time.Time
		if root := a.rootRun(t); root != nil {
			since = root.Time
		}
		err = lastrun.Write(lastrun.Dir(a.getenv), rec, since)
	}
	if err != nil && r.verbose {
		a.notef("not recording this run for `portclaim status`: %v", err)
	}
}

// rootRun is root's record of its last run for t, if root wrote one.
func (a *app) rootRun(t target) *lastrun.Record {
	data, err := safeopen.RootFile(filepath.Join(a.places.RootRuns, lastrun.RootFile(t.Name)), lastrun.MaxSize)
	if err != nil {
		return nil
	}
	rec, err := lastrun.Decode(data)
	if err != nil {
		return nil
	}
	return &rec
}

// lastRunOf reads a user's last run: the newer of their own record (in
// their home: as root, through safeopen) and root's record of its runs
// for them.
func (a *app) lastRunOf(l lookup) (*lastrun.Record, string) {
	if l.err != nil {
		return nil, l.err.Error()
	}
	own, problem := a.ownRun(l.t)
	newest := lastrun.Newest(own, a.rootRun(l.t))
	if newest != nil {
		problem = ""
	}
	return newest, problem
}

// ownRun reads the record the user writes in their state directory.
func (a *app) ownRun(t target) (*lastrun.Record, string) {
	var path string
	var data []byte
	var err error
	if t.Self && a.euid != 0 {
		path = filepath.Join(lastrun.Dir(a.getenv), lastrun.File)
		data, err = safeopen.ReadFile(path, lastrun.MaxSize)
	} else {
		path = filepath.Join(t.Home, ".local", "state", "portclaim", lastrun.File)
		data, err = safeopen.UserFile(path, t.UID, lastrun.MaxSize)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "" // no run recorded yet
	}
	if err != nil {
		return nil, err.Error()
	}
	r, err := lastrun.Decode(data)
	if err != nil {
		return nil, fmt.Sprintf("%s: %v", path, err)
	}
	// The user writes this file: a run by root is never in it, and one
	// dated ahead of the clock would hide root's record of its runs.
	r.By = ""
	if r.Time.After(time.Now().Add(time.Minute)) {
		return nil, fmt.Sprintf("%s: dated %s, ahead of the clock", path, r.Time.Format(time.RFC3339))
	}
	return &r, ""
}
