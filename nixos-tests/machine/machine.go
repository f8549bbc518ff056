// Package machine boots a throwaway Debian systemd inside systemd-nspawn so
// end-to-end tests can exercise real system and user service managers.
//
// A machine is a fresh copy of a cached minbase rootfs with two users, alice
// (uid 1000, lingering, so her user manager runs from boot) and bob (uid
// 1001, no user manager). Commands run inside via nsenter, so no network,
// ssh or agent is needed in the guest.
//
// Everything here must run as root; see Prereqs.
package machine

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
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

const (
	// harnessVersion is part of the rootfs cache key; bump it whenever the
	// way the tarball is built changes so stale caches are not reused.
	harnessVersion = "1"
	suite          = "bookworm"

	readyTimeout = 60 * time.Second
	stopTimeout  = 20 * time.Second

	// rootPATH is the whole environment of commands run as root inside the
	// machine (and of nsenter itself, which needs PATH to find setpriv/env).
	rootPATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

	// workParent holds the per-machine directories. Not /tmp: that may be a
	// tmpfs, and a few hundred MB per machine does not belong in RAM.
	workParent = "/var/tmp"
)

// rootfsPackages are installed on top of minbase. dbus-user-session and
// libpam-systemd give users a working user manager and session bus.
var rootfsPackages = []string{
	"systemd", "systemd-sysv", "dbus", "dbus-user-session",
	"libpam-systemd", "polkitd", "iproute2",
}

// testUsers are created in every machine; only lingerUser gets a user
// manager at boot, bob stays without one so tests can cover that case.
var testUsers = []struct {
	name string
	uid  int
}{{"alice", 1000}, {"bob", 1001}}

const lingerUser = "alice"

// Config describes a machine to boot. The zero value is usable.
type Config struct {
	Name     string            // machine name (default: "portclaim-e2e-" + random hex)
	CacheDir string            // rootfs tarball cache; default $PORTCLAIM_E2E_CACHE, else /var/cache/portclaim-e2e
	BindRO   map[string]string // host path -> path inside the machine, bound read-only (--bind-ro=)
	// Setup is called with the extracted rootfs dir (host path) before the
	// first boot, after the test users exist, to write unit files etc.
	Setup func(root string) error
	// Log optionally receives nspawn console output and harness progress.
	// Both also go to console.log in the machine's work dir, which Close
	// deletes; Boot and Reboot errors include its tail.
	Log io.Writer
}

// Machine is a booted container. Run, RunEnv and WriteFile may be used from
// several goroutines, also while Close runs (in-flight commands are killed);
// Reboot must not overlap other calls.
type Machine struct {
	name    string
	dir     string // work dir: root/ and console.log
	root    string // dir/root, the rootfs
	cfg     Config
	logFile *os.File
	console *consoleWriter

	mu     sync.Mutex
	cur    *nspawnRun // nil when not running
	closed bool
}

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

// Result is the outcome of a command run inside the machine.
type Result struct {
	Cmd      string // what was run, for messages: "[user] arg arg ..."
	Stdout   string
	Stderr   string
	ExitCode int   // -1 when Err != nil
	Err      error // set only when the command could not be run (or was killed)
}

func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "command: %s\nexit code: %d\n", r.Cmd, r.ExitCode)
	if r.Err != nil {
		fmt.Fprintf(&b, "error: %v\n", r.Err)
	}
	fmt.Fprintf(&b, "stdout:\n%s\nstderr:\n%s", indent(r.Stdout), indent(r.Stderr))
	return b.String()
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "  (empty)"
	}
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

// --- prerequisites ---------------------------------------------------------

// requiredTools maps each host command the harness runs to the Debian
// package that provides it.
var requiredTools = []struct{ bin, pkg string }{
	{"systemd-nspawn", "systemd-container"},
	{"mmdebstrap", "mmdebstrap"},
	{"nsenter", "util-linux"},
	{"setpriv", "util-linux"},
	{"tar", "tar"},
	{"chroot", "coreutils"},
}

// Prereqs reports whether machines can be booted here: it returns nil when
// running as root with all required tools in PATH, and otherwise an error
// naming each missing thing and the apt-get package that provides it.
func Prereqs() error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, fmt.Sprintf("must run as root (euid is %d)", os.Geteuid()))
	}
	for _, t := range requiredTools {
		if _, err := exec.LookPath(t.bin); err != nil {
			missing = append(missing, fmt.Sprintf("%s not found in PATH (apt-get install %s)", t.bin, t.pkg))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("machine: prerequisites missing: %s", strings.Join(missing, "; "))
}

// --- rootfs cache ----------------------------------------------------------

func defaultCacheDir() string {
	if d := os.Getenv("PORTCLAIM_E2E_CACHE"); d != "" {
		return d
	}
	return "/var/cache/portclaim-e2e"
}

// rootfsKey identifies a tarball by everything that goes into building it.
func rootfsKey() string {
	pkgs := slices.Clone(rootfsPackages)
	slices.Sort(pkgs)
	h := sha256.New()
	fmt.Fprintf(h, "harness=%s\nsuite=%s\nvariant=minbase\npackages=%s\n",
		harnessVersion, suite, strings.Join(pkgs, ","))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Rootfs returns the path of a cached rootfs tarball, building it with
// mmdebstrap (from the host's apt sources) if needed. Concurrent callers,
// also in other processes, serialize on a lock file so it is built once.
func Rootfs(ctx context.Context, cacheDir string) (tarPath string, err error) {
	if cacheDir == "" {
		cacheDir = defaultCacheDir()
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("machine: rootfs cache: %w", err)
	}
	key := rootfsKey()
	tarPath = filepath.Join(cacheDir, "rootfs-"+key+".tar")
	if fileExists(tarPath) { // fast path: no lock needed to read a finished tarball
		return tarPath, nil
	}

	unlock, err := lockFile(ctx, filepath.Join(cacheDir, "lock"))
	if err != nil {
		return "", fmt.Errorf("machine: rootfs cache lock: %w", err)
	}
	defer unlock()
	if fileExists(tarPath) { // someone else built it while we waited
		return tarPath, nil
	}
	// We hold the lock, so any temp files are leftovers of interrupted builds.
	stale, _ := filepath.Glob(filepath.Join(cacheDir, ".building-*"))
	for _, f := range stale {
		os.Remove(f)
	}

	// The temp name must end in .tar too: mmdebstrap picks the format from it
	// (and we also pass --format to be explicit).
	tmp := filepath.Join(cacheDir, fmt.Sprintf(".building-%s-%d.tar", key, os.Getpid()))
	if err := mmdebstrap(ctx, tmp); err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := os.Rename(tmp, tarPath); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("machine: rootfs cache: %w", err)
	}
	return tarPath, nil
}

func mmdebstrap(ctx context.Context, out string) error {
	// No mirror argument: mmdebstrap then uses the host's apt sources, so
	// the harness works behind whatever mirror/proxy the host is set up for.
	cmd := exec.CommandContext(ctx, "mmdebstrap",
		"--variant=minbase", "--format=tar",
		"--include="+strings.Join(rootfsPackages, ","),
		suite, out)
	// mmdebstrap mounts /proc, /dev etc. in its chroot; give it a chance to
	// clean those up rather than SIGKILLing it on cancellation.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	output, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("machine: mmdebstrap failed: %v\n%s", err, tailLines(string(output), 30))
	}
	return nil
}

// lockFile takes an exclusive flock on path, polling so ctx can cancel the
// wait. The returned func releases it.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing the fd drops the lock
		}
		if err != syscall.EWOULDBLOCK && err != syscall.EINTR {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// --- boot ------------------------------------------------------------------

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

// prepareRootfs extracts the tarball and does the per-machine setup that
// must happen before boot: identity, users and alice's linger flag.
func (m *Machine) prepareRootfs(ctx context.Context, tarPath string) error {
	if err := os.Mkdir(m.root, 0o755); err != nil {
		return err
	}
	if err := runHost(ctx, "tar", "--numeric-owner", "-xpf", tarPath, "-C", m.root); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(m.root, "etc/hostname"), []byte(m.name+"\n"), 0o644); err != nil {
		return err
	}
	// A fixed machine ID keeps the identity (and the journal directory)
	// stable across Reboot; without one nspawn derives a new one per boot.
	if err := os.WriteFile(filepath.Join(m.root, "etc/machine-id"), []byte(randomHex(16)+"\n"), 0o444); err != nil {
		return err
	}
	// useradd runs from the rootfs via chroot so the users land in the
	// guest's /etc/passwd with the guest's defaults (skel, shells).
	for _, u := range testUsers {
		if err := runHost(ctx, "chroot", m.root, "useradd",
			"--create-home", "--user-group", "--shell", "/bin/bash",
			"--uid", strconv.Itoa(u.uid), u.name); err != nil {
			return err
		}
	}
	// An empty file here is exactly what `loginctl enable-linger` creates;
	// logind starts user@UID.service for it at boot.
	lingerDir := filepath.Join(m.root, "var/lib/systemd/linger")
	if err := os.MkdirAll(lingerDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(lingerDir, lingerUser), nil, 0o644)
}

// runHost runs a setup command on the host, returning its output on failure.
func runHost(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = []string{rootPATH}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tailLines(string(out), 20))
	}
	return nil
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
	return m.poll(ctx, run, lingerUser+"'s user manager", func() (bool, string) {
		r := m.RunEnv(ctx, lingerUser, env, "systemctl", "--user", "is-system-running", "--wait")
		return isUp(r), r.String()
	})
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
			return fmt.Errorf("systemd-nspawn exited while waiting for %s: %v", what, run.waitErr)
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

// --- running commands ------------------------------------------------------

// Name returns the machine (and guest host) name.
func (m *Machine) Name() string { return m.name }

// Root returns the host path of the machine's rootfs.
func (m *Machine) Root() string { return m.root }

// Run runs args inside the machine as user ("" or "root" for root) and
// waits for it. Root gets only PATH in its environment; other users get
// setpriv --reset-env's (HOME, USER, LOGNAME, SHELL, PATH). XDG_RUNTIME_DIR
// is deliberately not set.
func (m *Machine) Run(ctx context.Context, user string, args ...string) Result {
	return m.RunEnv(ctx, user, nil, args...)
}

// RunEnv is Run with extra KEY=VALUE environment entries, applied with env(1)
// inside the machine after the user switch.
func (m *Machine) RunEnv(ctx context.Context, user string, env []string, args ...string) Result {
	if user == "" {
		user = "root"
	}
	res := Result{Cmd: describe(user, env, args), ExitCode: -1}
	if len(args) == 0 {
		res.Err = errors.New("machine: Run: no command")
		return res
	}
	for _, e := range env {
		if !strings.Contains(e, "=") || strings.HasPrefix(e, "=") {
			res.Err = fmt.Errorf("machine: Run: env entry %q is not KEY=VALUE", e)
			return res
		}
	}
	run, pid := m.running()
	if run == nil {
		res.Err = errors.New("machine: Run: machine is not running")
		return res
	}

	argv := []string{"-t", strconv.Itoa(pid), "-a"}
	if user != "root" {
		argv = append(argv, "setpriv", "--reuid="+user, "--regid="+user, "--init-groups", "--reset-env")
	}
	if len(env) > 0 {
		argv = append(argv, "env")
		argv = append(argv, env...)
	}
	argv = append(argv, args...)

	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "nsenter", argv...)
	cmd.Env = []string{rootPATH}
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Own process group, shared with the command nsenter forks into the
	// guest's PID namespace, so cancellation can find and kill it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { killGuestSide(cmd.Process.Pid); return nil }
	// Backstop: kills nsenter itself if it lingers, and stops waiting for a
	// daemon started by the command that keeps our stdout pipe open.
	cmd.WaitDelay = 5 * time.Second

	err := cmd.Start()
	if err == nil {
		if run.track(cmd.Process.Pid) {
			defer run.untrack(cmd.Process.Pid)
		} else {
			killGuestSide(cmd.Process.Pid) // lost a race with stop
		}
		err = cmd.Wait()
	}
	res.Stdout, res.Stderr = stdout.String(), stderr.String()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		res.ExitCode = 0
	case errors.As(err, &exitErr) && exitErr.Exited():
		res.ExitCode = exitErr.ExitCode()
	case errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState.Exited():
		// The command finished but left something (a daemon it started)
		// holding stdout/stderr; its exit status is still the answer.
		res.ExitCode = cmd.ProcessState.ExitCode()
	default: // could not start, or killed (e.g. by ctx)
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		res.Err = err
	}
	return res
}

// running returns the current boot and its init PID, or nil, 0 if the
// machine is not (yet, or no longer) up.
func (m *Machine) running() (*nspawnRun, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur == nil || m.cur.initPID == 0 {
		return nil, 0
	}
	return m.cur, m.cur.initPID
}

// killGuestSide SIGKILLs the processes in nsenter's process group (the
// command it forked into the guest and that command's children) but not
// nsenter itself. nsenter must live to reap its child: a child orphaned by
// nsenter's death is reparented to the host's init (not the guest's), and
// until the host reaps that zombie the guest's PID namespace cannot be torn
// down, so the machine hangs on shutdown.
func killGuestSide(nsenterPID int) {
	// Repeat a few times to catch processes forked while we were scanning.
	for range 3 {
		found := false
		for _, pid := range groupMembers(nsenterPID) {
			if pid != nsenterPID {
				syscall.Kill(pid, syscall.SIGKILL)
				found = true
			}
		}
		if !found {
			return
		}
	}
}

// groupMembers lists the live (non-zombie) processes in process group pgid.
func groupMembers(pgid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after "(comm)": state ppid pgrp ...; comm may contain spaces.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) >= 3 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// describe renders a command for Result.String.
func describe(user string, env, args []string) string {
	parts := []string{"[" + user + "]"}
	for _, a := range append(slices.Clone(env), args...) {
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\$") {
			a = strconv.Quote(a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// --- files -----------------------------------------------------------------

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

// --- lifecycle -------------------------------------------------------------

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

// --- logging ---------------------------------------------------------------

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

// --- small helpers ---------------------------------------------------------

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func randomHex(nBytes int) string {
	b := make([]byte, nBytes)
	rand.Read(b) // never fails on Linux (Go 1.24+ crashes rather than returning an error)
	return hex.EncodeToString(b)
}
