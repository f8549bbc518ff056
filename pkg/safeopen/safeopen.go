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
	f, err := os.OpenFile(real, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s is not a regular file", real)
	}
	if st.Uid != 0 || st.Mode&0o022 != 0 {
		return nil, fmt.Errorf("not trusting %s: it must belong to root and be writable by root only (it is uid %d, mode %o)", real, st.Uid, st.Mode&0o777)
	}
	return readMax(f, st.Size, max)
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
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) {
		return storeLink(dirfd, name, clean, max)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", clean, err)
	}
	f := os.NewFile(uintptr(fd), clean)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s is not a regular file", clean)
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
	if !filepath.IsAbs(target) || !strings.HasPrefix(filepath.Clean(target)+"/", StorePrefix) {
		return nil, fmt.Errorf("%s is a link to %q; as root, portclaim follows links in a user's directory only into %s", path, target, StorePrefix)
	}
	return RootFile(filepath.Clean(target), max)
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
