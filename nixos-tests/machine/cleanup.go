// Tearing a machine down: halting it, and removing its work directory
// without following bind mounts into the host.

package machine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Close halts the machine (SIGTERM, then SIGKILL after 20 s) and deletes its
// directory. It is idempotent and safe on a half-booted machine.
func (m *Machine) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	run := m.cur
	m.cur = nil
	m.mu.Unlock()

	var errs []error
	if run != nil {
		m.logf("powering off")
		errs = append(errs, m.stop(run))
	}
	if m.logFile != nil {
		m.logFile.Close() // nspawn is reaped, so nothing writes to it any more
	}
	if m.dir != "" {
		errs = append(errs, removeWorkDir(m.dir))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("machine %s: close: %w", m.name, err)
	}
	return nil
}

// stop asks nspawn to halt the container and waits; if that takes longer
// than stopTimeout it kills nspawn's whole process group and the container.
func (m *Machine) stop(run *nspawnRun) error {
	run.killInflight()
	run.cancel() // cmd.Cancel: SIGTERM, which nspawn turns into a clean halt
	var err error
	select {
	case <-run.exited:
	case <-time.After(stopTimeout):
		err = fmt.Errorf("systemd-nspawn did not stop within %v; killed", stopTimeout)
		syscall.Kill(-run.cmd.Process.Pid, syscall.SIGKILL)
		<-run.exited
		m.removeNspawnState()
	}
	// Normally a no-op. A SIGKILLed nspawn leaves the guest's init (by
	// then maybe systemd-shutdown) behind; killing a PID namespace's init
	// kills everything in it. The namespace check guards against PID reuse.
	if run.initNS != "" {
		if ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", run.initPID)); ns == run.initNS {
			syscall.Kill(run.initPID, syscall.SIGKILL)
		}
	}
	syscall.Kill(-run.cmd.Process.Pid, syscall.SIGKILL) // stray helpers, if any
	return err
}

// removeNspawnState removes what a SIGKILLed nspawn leaves in the host's
// /run (it cleans these up itself on a normal exit): its mount propagation
// dir and its image lock file, named after the rootfs's device and inode.
func (m *Machine) removeNspawnState() {
	os.Remove(filepath.Join("/run/systemd/nspawn/propagate", m.name)) // only if empty
	var st syscall.Stat_t
	if syscall.Stat(m.root, &st) == nil {
		os.Remove(fmt.Sprintf("/run/systemd/nspawn/locks/inode-%d:%d", st.Dev, st.Ino))
	}
}

// removeWorkDir deletes a machine's directory. nspawn mounts only inside its
// own mount namespace, but if anything under dir were mounted in ours,
// RemoveAll would descend into it and delete host files (a bind mount of a
// host dir, say). So detach such mounts first and refuse if any survive.
func removeWorkDir(dir string) error {
	for _, mp := range mountsUnder(dir) {
		syscall.Unmount(mp, syscall.MNT_DETACH)
	}
	if left := mountsUnder(dir); len(left) > 0 {
		return fmt.Errorf("not removing %s: still mounted: %s", dir, strings.Join(left, ", "))
	}
	return os.RemoveAll(dir)
}

// mountsUnder lists mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var mps []string
	for line := range strings.Lines(string(data)) {
		fields := strings.Fields(line)
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			mps = append(mps, mp)
		}
	}
	slices.SortFunc(mps, func(a, b string) int { return len(b) - len(a) })
	return mps
}

// unescapeMountinfo undoes the kernel's \ooo octal escaping of paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
