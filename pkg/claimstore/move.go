package claimstore

// Moving the store: services.portclaim.claimsDir changed. The records are
// where the old start conditions looked; the new conditions look in the
// new directory. Until every record is there, a unit could start though a
// claim exists, and status, release and reconcile would not see it. Root
// keeps a note of the directory it served last, outside any claims
// directory, so that the move knows where the records are.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/portclaim/portclaim/pkg/policy"
	"github.com/portclaim/portclaim/pkg/safeopen"
	"github.com/portclaim/portclaim/pkg/unitname"
)

// Served reads the note at path: the claims directory served last. With
// no note (a machine on a portclaim before the note), the default
// directory, where the claims were if anywhere. A note root alone cannot
// have written is an error: nobody else decides where root looks.
func Served(path string) (string, error) {
	data, err := safeopen.RootFile(path, 4096)
	if errors.Is(err, fs.ErrNotExist) {
		return policy.DefaultClaimsDir, nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the note of the claims directory: %w", err)
	}
	dir := strings.TrimSuffix(string(data), "\n")
	if !policy.CleanAbs(dir) {
		return "", fmt.Errorf("%s names %q, not a claims directory", path, dir)
	}
	return dir, nil
}

// Moving reports whether records are still to be moved from the
// directory served last (the note at path) to dir: the directory differs
// and holds a user's directory. Empty ones count: a move killed after
// its last record, before its note, is not done until the note names
// dir (a later move must start from where the records are).
func Moving(path, dir string) (from string, err error) {
	served, err := Served(path)
	if err != nil || served == dir {
		return "", err
	}
	users, err := Store{Dir: served}.Users()
	if err != nil || len(users) == 0 {
		return "", err
	}
	return served, nil
}

// MoveTo moves every record from the directory served last (the note at
// path) into s, then notes s as served. Each record moves in one rename
// (its unit's old condition no longer sees it, its new one does), or, to
// another file system, is written in s before it goes from the old
// directory; killed half way, the next run finishes (a record in both
// places is the same record). Both stores' locks are held: a broker still
// serving the old directory waits, and then finds it moved. It returns
// the records moved; a record it cannot move stays, said in the error,
// and the note keeps the old directory, so every reader still finds it.
func (s Store) MoveTo(ctx context.Context, path string) (int, error) {
	from, err := Moving(path, s.Dir)
	if err != nil {
		return 0, err
	}
	moved := 0
	if from != "" {
		old := Store{Dir: from}
		unlockOld, err := old.Lock(ctx)
		if err != nil {
			return 0, err
		}
		defer unlockOld()
		unlock, err := s.Lock(ctx)
		if err != nil {
			return 0, err
		}
		defer unlock()
		if moved, err = s.moveFrom(old); err != nil {
			return moved, err
		}
	}
	if note, err := safeopen.RootFile(path, 4096); err == nil && string(note) == s.Dir+"\n" {
		return moved, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return moved, err
	}
	return moved, writeAtomic(path, []byte(s.Dir+"\n"))
}

func (s Store) moveFrom(old Store) (int, error) {
	users, err := old.Users()
	if err != nil {
		return 0, err
	}
	moved := 0
	var problems []string
	for _, u := range users {
		for _, sub := range []string{"", releasingDir} {
			fromDir := filepath.Join(old.UserDir(u), sub)
			if p := trustedDir(fromDir); errors.Is(p, errMissing) {
				continue
			} else if p != nil {
				problems = append(problems, p.Error())
				continue
			}
			names, err := readNames(fromDir)
			if err != nil {
				return moved, err
			}
			toDir := filepath.Join(s.UserDir(u), sub)
			for _, name := range names {
				if !unitname.Claimable(name) {
					continue
				}
				if err := s.ensureDir(toDir); err != nil {
					return moved, err
				}
				if err := moveRecord(filepath.Join(fromDir, name), filepath.Join(toDir, name)); err != nil {
					problems = append(problems, err.Error())
					continue
				}
				moved++
			}
			if err := syncDir(fromDir); err != nil {
				return moved, err
			}
		}
	}
	if len(problems) > 0 {
		return moved, fmt.Errorf("not moved from %s to %s: %s", old.Dir, s.Dir, strings.Join(problems, "; "))
	}
	return moved, nil
}

// moveRecord moves one record: a rename within a file system; across
// file systems, a copy of a record root wrote (one that is not root's
// would become root's in the copy: it stays, to be repaired), then the
// old one's removal. A record already at to is the same record, left
// there by a move killed after its copy.
func moveRecord(from, to string) error {
	if _, err := os.Lstat(to); err == nil {
		return removeSynced(from)
	}
	err := os.Rename(from, to)
	if err == nil || !errors.Is(err, unix.EXDEV) {
		if err == nil {
			return syncDir(filepath.Dir(to))
		}
		return fmt.Errorf("moving %s: %w", from, err)
	}
	data, err := safeopen.RootOwnedFile(from, maxRecord)
	if err != nil {
		return fmt.Errorf("%s cannot be copied to another file system as root's record: %w", from, err)
	}
	if err := writeAtomic(to, data); err != nil {
		return err
	}
	return removeSynced(from)
}
