// Booting a machine with systemd-nspawn and waiting until its system and
// user managers are up.

package machine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// nspawnRun is one boot of the machine: one systemd-nspawn process.
type nspawnRun struct {
	cmd     *exec.Cmd
	cancel  context.CancelFunc // asks nspawn to halt the container (SIGTERM)
	exited  chan struct{}      // closed once nspawn has been reaped
	waitErr error              // valid after exited is closed
	initPID int                // host PID of the container's systemd; set by waitReady
	initNS  string             // its /proc/PID/ns/pid link, to recognise it later

	mu       sync.Mutex
	inflight map[int]bool // nsenter PIDs of running commands
	stopping bool
}

// track registers a started nsenter so stop can kill what it runs. It
// returns false if the machine is already stopping.
func (r *nspawnRun) track(pid int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		return false
	}
	if r.inflight == nil {
		r.inflight = map[int]bool{}
	}
	r.inflight[pid] = true
	return true
}

func (r *nspawnRun) untrack(pid int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.inflight, pid)
}

// killInflight kills every command still running via nsenter and refuses
// new ones. Those processes live outside the guest's cgroups, and one that
// outlives its nsenter cannot be reaped by the guest (see killGuestSide).
func (r *nspawnRun) killInflight() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopping = true
	for pid := range r.inflight {
		killGuestSide(pid)
	}
}

// Boot creates a fresh machine from the cached rootfs and boots it, waiting
// until the system manager and alice's user manager are up. On failure it
// tears down everything it started; the error includes the console tail.
func Boot(ctx context.Context, cfg Config) (_ *Machine, err error) {
	if err := Prereqs(); err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		cfg.Name = "portclaim-e2e-" + randomHex(4)
	}
	tarPath, err := Rootfs(ctx, cfg.CacheDir)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(workParent, cfg.Name+".")
	if err != nil {
		return nil, fmt.Errorf("machine: %w", err)
	}
	m := &Machine{name: cfg.Name, dir: dir, root: filepath.Join(dir, "root"), cfg: cfg}
	defer func() {
		if err != nil {
			tail := m.consoleTail()
			m.Close()
			err = fmt.Errorf("machine %s: boot: %w\n--- console log tail ---\n%s", m.name, err, tail)
		}
	}()

	if m.logFile, err = os.Create(filepath.Join(dir, "console.log")); err != nil {
		return nil, err
	}
	m.console = &consoleWriter{file: m.logFile, extra: cfg.Log}

	start := time.Now()
	m.logf("extracting %s into %s", tarPath, m.root)
	if err := m.prepareRootfs(ctx, tarPath); err != nil {
		return nil, err
	}
	if cfg.Setup != nil {
		if err := cfg.Setup(m.root); err != nil {
			return nil, fmt.Errorf("Config.Setup: %w", err)
		}
	}
	m.logf("rootfs ready after %v", time.Since(start).Round(time.Millisecond))
	if err := m.bootAndWait(ctx); err != nil {
		return nil, err
	}
	m.logf("machine ready after %v", time.Since(start).Round(time.Millisecond))
	return m, nil
}

// bootAndWait starts nspawn on the existing rootfs and waits until ready.
func (m *Machine) bootAndWait(ctx context.Context) error {
	run, err := m.startNspawn()
	if err != nil {
		return err
	}
	m.mu.Lock()
	closed := m.closed
	if !closed {
		m.cur = run
	}
	m.mu.Unlock()
	if closed { // Close ran meanwhile and could not see this boot
		m.stop(run)
		return errors.New("machine was closed during boot")
	}
	return m.waitReady(ctx, run)
}

func (m *Machine) startNspawn() (*nspawnRun, error) {
	args := []string{
		"-D", m.root,
		"--machine=" + m.name,
		"--private-network",
		// The host's systemd is not PID 1 here: there is no machined to
		// register with, and nspawn must stay in our cgroup, not create a scope.
		"--register=no", "--keep-unit",
		// Not "passive": that leaves the console pty unread until shutdown,
		// so console.log would be empty exactly when a boot hangs.
		// read-only streams it live and never reads our stdin.
		"--console=read-only",
		// Keep the console log and in-guest systemctl output free of ANSI colours.
		"--setenv=SYSTEMD_COLORS=0",
	}
	for _, host := range slices.Sorted(maps.Keys(m.cfg.BindRO)) {
		args = append(args, "--bind-ro="+escapeBind(host)+":"+escapeBind(m.cfg.BindRO[host]))
	}
	args = append(args, "--boot")

	// The machine lives until Close/Reboot, not until the ctx of whoever
	// called Boot is done, so nspawn gets a context of its own. Cancelling
	// it asks nspawn to halt the container cleanly.
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "systemd-nspawn", args...)
	cmd.Stdout, cmd.Stderr = m.console, m.console
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own process group: a terminal's Ctrl-C reaches only the test
		// binary, and stop() can kill nspawn with all its helpers at once.
		Setpgid: true,
		// If the test binary dies without Close, nspawn still halts the container.
		Pdeathsig: syscall.SIGTERM,
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	// Backstop only; stop() escalates to SIGKILL itself after stopTimeout.
	cmd.WaitDelay = stopTimeout + 10*time.Second

	m.logf("starting systemd-nspawn %s", strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("starting systemd-nspawn: %w", err)
	}
	run := &nspawnRun{cmd: cmd, cancel: cancel, exited: make(chan struct{})}
	go func() {
		run.waitErr = cmd.Wait()
		close(run.exited)
	}()
	return run, nil
}

// escapeBind escapes a path for --bind-ro, where ':' separates the paths.
func escapeBind(p string) string {
	return strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(p)
}

// waitReady waits (at most readyTimeout) for the container's init to appear,
// the system manager to finish booting, and alice's user manager to answer.
func (m *Machine) waitReady(ctx context.Context, run *nspawnRun) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()

	err := m.poll(ctx, run, "container init", func() (bool, string) {
		pid, err := findInit(run.cmd.Process.Pid)
		if err != nil {
			return false, err.Error()
		}
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
		if err != nil {
			return false, err.Error()
		}
		m.mu.Lock()
		run.initPID, run.initNS = pid, ns
		m.mu.Unlock()
		return true, ""
	})
	if err != nil {
		return err
	}
	m.logf("container init is host PID %d", run.initPID)

	// --wait blocks until boot has finished; it fails fast (and we retry)
	// while the system bus is not up yet.
	err = m.poll(ctx, run, "system manager", func() (bool, string) {
		r := m.Run(ctx, "root", "systemctl", "is-system-running", "--wait")
		return isUp(r), r.String()
	})
	if err != nil {
		return err
	}

	uid, _, err := m.lookupOwner(lingerUser)
	if err != nil {
		return err
	}
	// setpriv --reset-env does not set XDG_RUNTIME_DIR, and systemctl --user
	// needs it to find the user bus. Only the wait sets it: the program
	// under test must find it on its own.
	env := []string{fmt.Sprintf("XDG_RUNTIME_DIR=/run/user/%d", uid)}
	err = m.poll(ctx, run, lingerUser+"'s user manager", func() (bool, string) {
		r := m.RunEnv(ctx, lingerUser, env, "systemctl", "--user", "is-system-running", "--wait")
		return isUp(r), r.String()
	})
	if err != nil {
		// What the system manager says of the user's manager and runtime
		// directory: the console only says they failed.
		diag, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r := m.Run(diag, "root", "journalctl", "-b", "--no-pager", "-n", "60", "-u", fmt.Sprintf("user-runtime-dir@%d.service", uid), "-u", fmt.Sprintf("user@%d.service", uid))
		err = fmt.Errorf("%w\n--- the system's journal of the user's manager ---\n%s", err, r.Stdout+r.Stderr)
	}
	return err
}

// isUp reports whether an is-system-running result means "booted". Degraded
// counts: a unit failing in the guest is for the test to judge, not the harness.
func isUp(r Result) bool {
	s := strings.TrimSpace(r.Stdout)
	return r.Err == nil && (s == "running" || s == "degraded")
}

// poll calls try every 200 ms until it succeeds, ctx ends or nspawn exits.
// try returns a description of its last failure for the error message.
func (m *Machine) poll(ctx context.Context, run *nspawnRun, what string, try func() (bool, string)) error {
	for {
		ok, detail := try()
		if ok {
			return nil
		}
		select {
		case <-run.exited:
			return fmt.Errorf("systemd-nspawn exited while waiting for %s: %w", what, run.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w; last attempt:\n%s", what, ctx.Err(), detail)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// findInit returns the PID of the container's systemd, which nspawn forks
// as its direct child (before exec the child is still called systemd-nspawn).
func findInit(nspawnPID int) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", nspawnPID, nspawnPID))
	if err != nil {
		return 0, err
	}
	for _, f := range strings.Fields(string(data)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "systemd" {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no systemd child of nspawn (PID %d) yet; children: %q", nspawnPID, strings.TrimSpace(string(data)))
}

// Reboot powers the machine off and boots the same rootfs again, waiting
// until it is ready as Boot does.
func (m *Machine) Reboot(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errors.New("machine: Reboot after Close")
	}
	run := m.cur
	m.cur = nil
	m.mu.Unlock()

	m.logf("rebooting")
	start := time.Now()
	if run != nil {
		if err := m.stop(run); err != nil {
			return fmt.Errorf("machine %s: reboot: %w", m.name, err)
		}
	}
	if err := m.bootAndWait(ctx); err != nil {
		return fmt.Errorf("machine %s: reboot: %w\n--- console log tail ---\n%s", m.name, err, m.consoleTail())
	}
	m.logf("machine ready after reboot in %v", time.Since(start).Round(time.Millisecond))
	return nil
}

// consoleWriter fans nspawn's output and harness messages out to console.log
// and the optional Config.Log. It never reports errors: a failing Log writer
// must not make exec stop draining nspawn's stdout, which would block nspawn.
type consoleWriter struct {
	mu    sync.Mutex
	file  io.Writer
	extra io.Writer
}

func (w *consoleWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.file.Write(p)
	if w.extra != nil {
		w.extra.Write(p)
	}
	return len(p), nil
}

func (m *Machine) logf(format string, args ...any) {
	if m.console == nil {
		return
	}
	fmt.Fprintf(m.console, "[harness %s] %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// consoleTail returns the last lines of console.log for error messages.
func (m *Machine) consoleTail() string {
	data, err := os.ReadFile(filepath.Join(m.dir, "console.log"))
	if err != nil {
		return fmt.Sprintf("(no console log: %v)", err)
	}
	return tailLines(strings.ReplaceAll(string(data), "\r", ""), 40)
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func randomHex(nBytes int) string {
	b := make([]byte, nBytes)
	rand.Read(b) // never fails on Linux (Go 1.24+ crashes rather than returning an error)
	return hex.EncodeToString(b)
}
