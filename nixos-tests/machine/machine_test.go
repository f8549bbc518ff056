package machine_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portclaim/portclaim/nixos-tests/machine"
)

func TestBootRunClose(t *testing.T) {
	if err := machine.Prereqs(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	holdport := buildHoldport(t)

	start := time.Now()
	if _, err := machine.Rootfs(ctx, ""); err != nil {
		t.Fatal(err)
	}
	t.Logf("rootfs tarball ready in %v", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	m, err := machine.Boot(ctx, machine.Config{
		BindRO: map[string]string{holdport: "/usr/local/bin/holdport"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() }) // in case of an early failure; Close is idempotent
	t.Logf("machine %s booted in %v", m.Name(), time.Since(start).Round(time.Millisecond))

	if r := m.Run(ctx, "root", "systemctl", "is-system-running"); r.Err != nil ||
		!slices.Contains([]string{"running", "degraded"}, strings.TrimSpace(r.Stdout)) {
		t.Fatalf("system not up:\n%s", r)
	}
	if r := m.Run(ctx, "alice", "id", "-u"); r.ExitCode != 0 || strings.TrimSpace(r.Stdout) != "1000" {
		t.Fatalf("id -u as alice:\n%s", r)
	}
	// Rootless podman's network needs /dev/net/tun open to users, which
	// nspawn makes root's alone; the rootfs' tmpfiles line fixes it.
	if r := m.Run(ctx, "root", "stat", "-c", "%a", "/dev/net/tun"); strings.TrimSpace(r.Stdout) != "666" {
		t.Errorf("/dev/net/tun is not 0666:\n%s", r)
	}
	if r := m.Run(ctx, "alice", "podman", "--version"); r.ExitCode != 0 || !strings.HasPrefix(r.Stdout, "podman version 4.") {
		t.Errorf("podman as alice:\n%s", r)
	}

	unit := "[Unit]\nDescription=hold a port for the harness test\n\n" +
		"[Service]\nExecStart=/usr/local/bin/holdport tcp:127.0.0.1:7001\n"
	if err := m.WriteFile("/etc/systemd/system/hold-test.service", []byte(unit), 0o644, ""); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"systemctl", "daemon-reload"}, {"systemctl", "start", "hold-test.service"}} {
		if r := m.Run(ctx, "root", args...); r.ExitCode != 0 {
			t.Fatalf("%s", r)
		}
	}
	// Type=simple: start returns before holdport has bound its socket.
	var last machine.Result
	for deadline := time.Now().Add(10 * time.Second); ; {
		last = m.Run(ctx, "root", "ss", "-Htln")
		if last.ExitCode == 0 && strings.Contains(last.Stdout, "127.0.0.1:7001 ") {
			break
		}
		if time.Now().After(deadline) {
			status := m.Run(ctx, "root", "systemctl", "status", "hold-test.service")
			t.Fatalf("127.0.0.1:7001 not listening:\n%s\n\n%s", last, status)
		}
		time.Sleep(200 * time.Millisecond)
	}

	root := m.Root()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("rootfs %s still exists after Close (stat: %v)", root, err)
	}
}

// buildHoldport builds the stand-in service statically, so it runs in the
// guest regardless of the host's libc.
func buildHoldport(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "holdport")
	cmd := exec.Command("go", "build", "-o", out, "github.com/portclaim/portclaim/nixos-tests/tools/holdport")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building holdport: %v\n%s", err, b)
	}
	return out
}
