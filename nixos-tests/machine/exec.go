// Running commands inside a booted machine, as root or a user, through
// nsenter and setpriv.

package machine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

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
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
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
