// Package safeopen reads files whose path someone else may control,
// without being steered by them. Root reads the policy and the claims
// only when root alone can have written them, and reads a user's files
// (their manifest, their last run) only through directories that user or
// root owns, following a link only into the Nix store.
package safeopen

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// StorePrefix is the one place a link in a user's directory may lead when
// root reads it: the Nix store, whose paths root owns and nobody changes
// (home-manager links ~/.config/portclaim/manifest.json there). A
// variable so that tests can stand in a directory of their own.
var StorePrefix = "/nix/store/"

// ErrTooLarge means a file is larger than its reader takes.
var ErrTooLarge = errors.New("file too large")

// RootFile reads path, up to max bytes, if root alone can have written
// it: the file (after symlinks) and every directory on the way to it, and
// to every symlink followed, belong to root and are writable by nobody
// else (a group- or world-writable directory with the sticky bit, such as
// the Nix store, counts: nobody else can replace root's entries in it).
func RootFile(path string, max int64) ([]byte, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("%s: not an absolute path", path)
	}
	if err := rootDirs(filepath.Dir(path)); err != nil {
		return nil, err
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, err
	}
	if real != path {
		if err := rootDirs(filepath.Dir(real)); err != nil {
			return nil, err
		}
	}
	return RootOwnedFile(real, max)
}

// ErrNotRoots means a file could have been written by someone other than
// root: it belongs to another uid, or others may write to it. The error
// is a *NotRootsError, which says whose it is.
var ErrNotRoots = errors.New("must belong to root and be writable by root only")

// NotRootsError is a file root alone cannot have written.
type NotRootsError struct {
	Path string
	UID  uint32
	Mode uint32 // permission bits
}

func (e *NotRootsError) Error() string {
	return fmt.Sprintf("not trusting %s: it %v (it is uid %d, mode %o)", e.Path, ErrNotRoots, e.UID, e.Mode)
}

func (e *NotRootsError) Is(target error) bool { return target == ErrNotRoots }

// RootOwnedFile reads path, up to max bytes, if it is a regular file that
// belongs to root and that nobody else may write (else an error wrapping
// a NotRootsError). It follows no link, and opens nothing but a regular file:
// path is looked at (lstat) before it is opened, so a FIFO, a device or a
// terminal is refused without being opened (opening one can block, wake
// a writer, or act, as /dev/watchdog does). The open takes no controlling
// terminal and does not block, and the file opened is checked again.
//
// The caller vouches for path's directory: root's, writable by root
// alone (RootFile checks every one on the way), so that nobody can swap
// the file between the look and the open.
func RootOwnedFile(path string, max int64) ([]byte, error) {
	f, st, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st.Uid != 0 || st.Mode&0o022 != 0 {
		return nil, &NotRootsError{Path: path, UID: st.Uid, Mode: st.Mode & 0o777}
	}
	return readMax(f, st.Size, max)
}

// openRegular opens path for reading only if it is a regular file: lstat
// first, then an open that follows no link, does not block and takes no
// controlling terminal, then fstat: the file opened must be the regular
// file looked at.
func openRegular(path string) (*os.File, unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return nil, st, &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	if err := regular(path, st); err != nil {
		return nil, st, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, st, err
	}
	var now unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &now); err != nil {
		f.Close()
		return nil, st, err
	}
	if err := regular(path, now); err != nil {
		f.Close()
		return nil, st, err
	}
	if now.Dev != st.Dev || now.Ino != st.Ino {
		f.Close()
		return nil, st, fmt.Errorf("%s changed while it was opened", path)
	}
	return f, now, nil
}

// regular says why st is not a regular file, or nil.
func regular(path string, st unix.Stat_t) error {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return nil
	case unix.S_IFLNK:
		return fmt.Errorf("%s is a link, not a regular file; not following it", path)
	}
	return fmt.Errorf("%s is not a regular file", path)
}

// rootDirs checks dir and every directory above it.
func rootDirs(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		var st unix.Stat_t
		if err := unix.Lstat(d, &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			// A link among the directories: what it leads to must be
			// root's too.
			real, err := filepath.EvalSymlinks(d)
			if err != nil {
				return err
			}
			if err := rootDirs(real); err != nil {
				return err
			}
		}
		writable := st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0 && st.Mode&unix.S_IFMT != unix.S_IFLNK
		if st.Uid != 0 || writable {
			return fmt.Errorf("not trusting files under %s: it must belong to root and be writable by root only (it is uid %d, mode %o)", d, st.Uid, st.Mode&0o7777)
		}
		if d == "/" {
			return nil
		}
	}
}

// UserFile reads path, up to max bytes, as root reads a file in uid's
// home: every directory on the way is opened without following links and
// must belong to uid or root; the file itself must be a regular file of
// uid or root, or a link into the Nix store (which RootFile then reads).
// A FIFO or device swapped in is refused without blocking.
func UserFile(path string, uid uint32, max int64) ([]byte, error) {
	clean := filepath.Clean(path)
	if !filepath.IsAbs(clean) || clean == "/" {
		return nil, fmt.Errorf("%s: not an absolute file path", path)
	}
	parts := strings.Split(strings.TrimPrefix(clean, "/"), "/")
	dirfd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer func() { unix.Close(dirfd) }()
	at := ""
	for _, name := range parts[:len(parts)-1] {
		at += "/" + name
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
				return nil, fmt.Errorf("%s is a link or not a directory; as root, portclaim follows no links in a user's path", at)
			}
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		unix.Close(dirfd)
		dirfd = fd
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return nil, err
		}
		if st.Uid != 0 && st.Uid != uid {
			return nil, fmt.Errorf("%s belongs to uid %d, neither root nor the user (uid %d)", at, st.Uid, uid)
		}
	}
	name := parts[len(parts)-1]
	// Look before opening: a link goes to the store (or nowhere), and a
	// FIFO or device is refused unopened. The directory is the user's, who
	// could swap the file between the look and the open: the open then
	// follows no link, does not block and takes no terminal, and what it
	// opened is checked again (a user cannot make a device node).
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: clean, Err: err}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return storeLink(dirfd, name, clean, max)
	}
	if err := regular(clean, st); err != nil {
		return nil, err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: clean, Err: err}
	}
	f := os.NewFile(uintptr(fd), clean)
	defer f.Close()
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if err := regular(clean, st); err != nil {
		return nil, err
	}
	if st.Uid != 0 && st.Uid != uid {
		return nil, fmt.Errorf("%s belongs to uid %d, neither root nor the user (uid %d)", clean, st.Uid, uid)
	}
	if st.Nlink > 1 {
		// A hard link to someone else's file (where the kernel's
		// protected_hardlinks is off) would carry its content here.
		return nil, fmt.Errorf("%s has %d hard links; as root, portclaim reads only a file with one from a user's directory", clean, st.Nlink)
	}
	return readMax(f, st.Size, max)
}

// storeLink follows a link found in a user's directory, only into the
// Nix store.
func storeLink(dirfd int, name, path string, max int64) ([]byte, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(dirfd, name, buf)
	if err != nil {
		return nil, err
	}
	target := string(buf[:n])
	if !filepath.IsAbs(target) || !inStore(filepath.Clean(target)) {
		return nil, fmt.Errorf("%s is a link to %q; as root, portclaim follows links in a user's directory only into %s", path, target, StorePrefix)
	}
	real, err := resolveInStore(filepath.Clean(target))
	if err != nil {
		return nil, fmt.Errorf("%s is a link into %s: %w", path, StorePrefix, err)
	}
	return RootFile(real, max)
}

// maxLinks bounds the links followed in one path, as the kernel does.
const maxLinks = 40

func inStore(path string) bool {
	return strings.HasPrefix(path+"/", StorePrefix) && path+"/" != StorePrefix
}

// resolveInStore resolves path, a path in the store, through every link
// on the way, each of which must lead into the store again: any user can
// build a store path, and one that is a link back out (to root's 0600
// file) must lead root nowhere. Nothing outside the store is looked at,
// not even to say whether it exists.
func resolveInStore(path string) (string, error) {
	for hops := 0; ; {
		if !inStore(path) {
			return "", fmt.Errorf("a link in it leads out of %s (to %q); as root, portclaim reads only what stays in the store", StorePrefix, path)
		}
		rest := strings.Split(strings.TrimPrefix(path, StorePrefix), "/")
		done := strings.TrimSuffix(StorePrefix, "/")
		relinked := false
		for i, name := range rest {
			next := done + "/" + name
			fi, err := os.Lstat(next)
			if err != nil {
				return "", err
			}
			if fi.Mode()&os.ModeSymlink != 0 {
				if hops++; hops > maxLinks {
					return "", fmt.Errorf("%s: more than %d links", path, maxLinks)
				}
				to, err := os.Readlink(next)
				if err != nil {
					return "", err
				}
				if !filepath.IsAbs(to) {
					to = filepath.Join(done, to)
				}
				// done holds no link, and a clean path no "..": joining
				// lexically is what the kernel would do.
				path = filepath.Join(append([]string{filepath.Clean(to)}, rest[i+1:]...)...)
				relinked = true
				break
			}
			done = next
		}
		if !relinked {
			return path, nil
		}
	}
}

// ReadFile reads path with the caller's own rights (none of the checks
// above: for a user reading their own files), at most max bytes: input
// larger than its reader takes is refused (an error wrapping ErrTooLarge)
// before it costs memory, at once when the file's size says so.
func ReadFile(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size := int64(-1)
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
	return readMax(f, size, max)
}

func readMax(f *os.File, size, max int64) ([]byte, error) {
	if size > max {
		return nil, fmt.Errorf("%s: %w (%d bytes; at most %d)", f.Name(), ErrTooLarge, size, max)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: %w (more than %d bytes)", f.Name(), ErrTooLarge, max)
	}
	return data, nil
}
