// Writing files into a machine, resolving its paths inside its own root.

package machine

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// WriteFile writes data to path as seen inside the machine, creating missing
// parent directories (mode 0755, owned like the file), and sets mode and
// owner ("" = root; names are looked up in the guest's /etc/passwd).
//
// While the machine runs, the write goes through /proc/<init>/root, so paths
// on the guest's own mounts (/run, /tmp) work too; otherwise it goes to the
// rootfs directory. Symlinks are resolved inside the guest, never the host.
func (m *Machine) WriteFile(path string, data []byte, mode os.FileMode, owner string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("machine: WriteFile: %q is not absolute", path)
	}
	base := m.fsBase()
	uid, gid, err := m.lookupOwner(owner)
	if err != nil {
		return err
	}
	hostPath, err := resolveIn(base, path)
	if err != nil {
		return fmt.Errorf("machine: WriteFile %s: %w", path, err)
	}
	if err := mkdirAllOwned(base, filepath.Dir(hostPath), uid, gid); err != nil {
		return fmt.Errorf("machine: WriteFile %s: %w", path, err)
	}
	if err := os.WriteFile(hostPath, data, mode); err != nil {
		return fmt.Errorf("machine: WriteFile %s: %w", path, err)
	}
	// WriteFile's mode is filtered by umask and ignored for existing files.
	if err := os.Chmod(hostPath, mode); err != nil {
		return fmt.Errorf("machine: WriteFile %s: %w", path, err)
	}
	if err := os.Chown(hostPath, uid, gid); err != nil {
		return fmt.Errorf("machine: WriteFile %s: %w", path, err)
	}
	return nil
}

// fsBase is the host path under which the guest's filesystem tree is visible.
func (m *Machine) fsBase() string {
	if _, pid := m.running(); pid != 0 {
		return fmt.Sprintf("/proc/%d/root", pid)
	}
	return m.root
}

// lookupOwner maps a guest user name to uid and primary gid using the
// guest's /etc/passwd; the host's user database is irrelevant here.
func (m *Machine) lookupOwner(owner string) (uid, gid int, err error) {
	if owner == "" || owner == "root" {
		return 0, 0, nil
	}
	passwd, err := resolveIn(m.fsBase(), "/etc/passwd")
	if err != nil {
		return 0, 0, err
	}
	f, err := os.Open(passwd)
	if err != nil {
		return 0, 0, fmt.Errorf("machine: looking up user %q: %w", owner, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) < 4 || fields[0] != owner {
			continue
		}
		uid, err1 := strconv.Atoi(fields[2])
		gid, err2 := strconv.Atoi(fields[3])
		if err := errors.Join(err1, err2); err != nil {
			return 0, 0, fmt.Errorf("machine: bad passwd entry for %q: %w", owner, err)
		}
		return uid, gid, nil
	}
	return 0, 0, fmt.Errorf("machine: no user %q in the machine's /etc/passwd", owner)
}

// resolveIn maps a guest path to a host path below base, following symlinks
// the way the guest would: absolute targets restart at base and ".." stops
// at base. A plain join would be wrong (and dangerous): Debian's /var/run is
// a symlink to /run, which on the host is the host's /run.
func resolveIn(base, guestPath string) (string, error) {
	todo := strings.Split(guestPath, "/")
	var done []string // resolved, symlink-free components below base
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		cand := filepath.Join(base, filepath.Join(done...), c)
		fi, err := os.Lstat(cand)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// Will be created; anything below it cannot be a symlink yet.
			done = append(done, c)
			continue
		case err != nil:
			return "", err
		case fi.Mode()&fs.ModeSymlink == 0:
			done = append(done, c)
			continue
		}
		if links++; links > 40 {
			return "", fmt.Errorf("too many levels of symbolic links in %s", guestPath)
		}
		target, err := os.Readlink(cand)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			done = done[:0]
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return filepath.Join(base, filepath.Join(done...)), nil
}

// mkdirAllOwned creates dir and its missing parents (all below base) and
// chowns the new ones, so e.g. ~alice/.config/systemd/user stays writable
// by alice (systemctl --user enable must be able to add symlinks there).
func mkdirAllOwned(base, dir string, uid, gid int) error {
	var missing []string
	for d := dir; d != base && len(d) > len(base); d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		missing = append(missing, d)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o755); err != nil {
			return err
		}
		if err := os.Chown(missing[i], uid, gid); err != nil {
			return err
		}
	}
	return nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
