// Package claimstore keeps the claim files: <claimsDir>/<user>/<unit>,
// root's files in root's directories, written only by the broker and by
// root mode, atomically. Anyone may read them (check and status do,
// unprivileged); only what root owns is believed.
//
// A release first moves a record to <claimsDir>/<user>/.releasing/<unit>,
// where no start condition looks, then brings the unit back, then
// removes the record: a unit is never down without a record of why, and
// a release killed half way is finished by the next run.
package claimstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portclaim/portclaim/pkg/claim"
	"github.com/portclaim/portclaim/pkg/policy"
	"github.com/portclaim/portclaim/pkg/safeopen"
	"github.com/portclaim/portclaim/pkg/unitname"
)

// releasingDir holds a user's records of releases under way.
const releasingDir = ".releasing"

// lockName is the lock file: mode 0600 in root's directory, so no user
// can open it, and so no user can hold it.
const lockName = ".lock"

// maxRecord bounds what is read from one claim file.
const maxRecord = 64 << 10

// Store is the claims directory of a policy.
type Store struct{ Dir string }

// UserDir is the claims directory of one user.
func (s Store) UserDir(user string) string { return filepath.Join(s.Dir, user) }

// Path is the claim file of user on unit: the path the unit's start
// condition names. Both names are validated first.
func (s Store) Path(user, unit string) (string, error) {
	if !policy.ValidUser(user) {
		return "", fmt.Errorf("%q is not a user name", user)
	}
	if !unitname.Claimable(unit) {
		return "", fmt.Errorf("%q is not a .service or .socket unit", unit)
	}
	return filepath.Join(s.Dir, user, unit), nil
}

func (s Store) releasingPath(user, unit string) (string, error) {
	p, err := s.Path(user, unit)
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(p), releasingDir, unit), nil
}

// Users lists the users with a claims directory.
func (s Store) Users() ([]string, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading claims: %w", err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && policy.ValidUser(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// List reads a user's records: claims, then releases under way, each
// sorted by unit. A missing directory has none.
func (s Store) List(user string) ([]claim.Record, error) {
	if !policy.ValidUser(user) {
		return nil, fmt.Errorf("%q is not a user name", user)
	}
	dir := s.UserDir(user)
	dirProblem := trustedDir(dir)
	if errors.Is(dirProblem, errMissing) {
		return nil, nil
	}
	var out []claim.Record
	for _, sub := range []string{"", releasingDir} {
		d := filepath.Join(dir, sub)
		names, err := readNames(d)
		if err != nil {
			return nil, fmt.Errorf("reading claims: %w", err)
		}
		subProblem := dirProblem
		if sub != "" && dirProblem == nil {
			if p := trustedDir(d); !errors.Is(p, errMissing) {
				subProblem = p
			}
		}
		for _, name := range names {
			if !unitname.Claimable(name) {
				continue // temp files, the lock, anything not a unit's claim
			}
			e := claim.Record{User: user, Unit: name, Path: filepath.Join(d, name), Releasing: sub != ""}
			if subProblem != nil {
				e.Problem = subProblem.Error()
			} else {
				e.Claim, e.Problem = readRecord(e.Path, user, name)
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// Records reads every user's records, claims and releases, by unit: what
// OnUnit says of each unit, from one read of the store (a request that
// looks at several units reads it once, not once a unit).
func (s Store) Records() (map[string][]claim.Record, error) {
	users, err := s.Users()
	if err != nil {
		return nil, err
	}
	out := map[string][]claim.Record{}
	for _, u := range users {
		entries, err := s.List(u)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			out[e.Unit] = append(out[e.Unit], e)
		}
	}
	return out, nil
}

// OnUnit reads every user's record on unit, claims and releases.
func (s Store) OnUnit(unit string) ([]claim.Record, error) {
	users, err := s.Users()
	if err != nil {
		return nil, err
	}
	var out []claim.Record
	for _, u := range users {
		for _, sub := range []string{"", releasingDir} {
			path := filepath.Join(s.UserDir(u), sub, unit)
			if _, err := os.Lstat(path); err != nil {
				continue
			}
			e := claim.Record{User: u, Unit: unit, Path: path, Releasing: sub != ""}
			if p := trustedDir(filepath.Dir(path)); p != nil {
				e.Problem = p.Error()
			} else {
				e.Claim, e.Problem = readRecord(path, u, unit)
			}
			out = append(out, e)
		}
	}
	return out, nil
}

var errMissing = errors.New("missing")

// trustedDir says why dir cannot be believed, errMissing when it does
// not exist, nil when root owns it and nobody else may write to it.
func trustedDir(dir string) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return errMissing
		}
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if st.Uid != 0 || st.Mode&0o022 != 0 {
		return fmt.Errorf("%s belongs to uid %d with mode %o; claims are root's (a directory of portclaim 0.1? see CHANGELOG.md)", dir, st.Uid, st.Mode&0o777)
	}
	return nil
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	sort.Strings(names)
	return names, err
}

// readRecord reads one record, and believes it only when root owns it
// (safeopen: no link followed, nothing but a regular file opened).
func readRecord(path, user, unit string) (claim.Claim, string) {
	data, err := safeopen.RootOwnedFile(path, maxRecord)
	var notRoots *safeopen.NotRootsError
	switch {
	case errors.As(err, &notRoots):
		return claim.Claim{}, fmt.Sprintf("%s belongs to uid %d with mode %o: not written by portclaim's broker", path, notRoots.UID, notRoots.Mode)
	case errors.Is(err, safeopen.ErrTooLarge):
		return claim.Claim{}, fmt.Sprintf("%s is larger than any claim record: %v", path, err)
	case err != nil:
		return claim.Claim{}, fmt.Sprintf("cannot read %s: %v", path, err)
	}
	c, err := claim.Decode(data)
	if err != nil {
		return c, fmt.Sprintf("%s: %v", path, err)
	}
	if c.User != user || c.Unit != unit {
		return c, fmt.Sprintf("%s records a claim of %s on %s, not of its own place", path, c.User, c.Unit)
	}
	return c, ""
}

// Write stores c atomically where its unit's condition looks: a temp
// file in the same directory, fsync, rename over the final name, fsync
// of the directory. A reader (or systemd's condition check) sees the old
// state or the whole new record.
func (s Store) Write(c claim.Claim) error {
	path, err := s.Path(c.User, c.Unit)
	if err != nil {
		return err
	}
	if err := s.ensureDir(filepath.Dir(path)); err != nil {
		return err
	}
	return writeAtomic(path, claim.Encode(c))
}

// Remove deletes user's claim on unit; a missing one is not an error.
func (s Store) Remove(user, unit string) error {
	path, err := s.Path(user, unit)
	if err != nil {
		return err
	}
	return removeSynced(path)
}

// BeginRelease moves user's claim on unit to the releasing directory
// (one rename: the unit's condition no longer sees it) and records the
// release in it.
func (s Store) BeginRelease(c claim.Claim) error {
	from, err := s.Path(c.User, c.Unit)
	if err != nil {
		return err
	}
	to, _ := s.releasingPath(c.User, c.Unit)
	if err := s.ensureDir(filepath.Dir(to)); err != nil {
		return err
	}
	if err := os.Rename(from, to); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("moving the claim on %s aside: %w", c.Unit, err)
	}
	if err := syncDir(filepath.Dir(from)); err != nil {
		return err
	}
	return writeAtomic(to, claim.Encode(c))
}

// UpdateRelease rewrites the record of a release under way.
func (s Store) UpdateRelease(c claim.Claim) error {
	to, err := s.releasingPath(c.User, c.Unit)
	if err != nil {
		return err
	}
	return writeAtomic(to, claim.Encode(c))
}

// EndRelease removes the record of a finished release.
func (s Store) EndRelease(user, unit string) error {
	p, err := s.releasingPath(user, unit)
	if err != nil {
		return err
	}
	return removeSynced(p)
}

// ensureDir creates a directory of the store, root's and 0755, and
// refuses to write into one that is not root's.
func (s Store) ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w (the NixOS module creates %s: is services.portclaim enabled?)", dir, err, s.Dir)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if p := trustedDir(d); p != nil {
			return fmt.Errorf("not writing claims: %w", p)
		}
		if d == s.Dir || d == filepath.Dir(d) {
			return nil
		}
	}
}

func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".claim-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename this finds nothing
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return syncDir(dir)
}

func removeSynced(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", path, err)
	}
	err := syncDir(filepath.Dir(path))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Lock takes the store's lock, waiting until ctx ends. Only root can open
// the lock file, so no user can block the broker by holding a lock.
func (s Store) Lock(ctx context.Context) (unlock func(), err error) {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", s.Dir, err)
	}
	if p := trustedDir(s.Dir); p != nil {
		return nil, p
	}
	path := filepath.Join(s.Dir, lockName)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the lock %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Uid != 0 || st.Mode&0o077 != 0 || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("the lock %s is not root's 0600 file", path)
	}
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { unix.Close(fd) }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			unix.Close(fd)
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			unix.Close(fd)
			return nil, fmt.Errorf("another portclaim run holds %s: %w", path, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
