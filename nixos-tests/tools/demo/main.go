// Command demo shows portclaim's whole story on a real systemd: it boots a
// test machine (see nixos-tests/machine) where the system's ollama.service
// holds 11434 and alice's home-manager container wants it, then runs, as
// alice, check, resolve, the user unit, status and release, printing each
// command and what it said. Run as root: sudo go run ./nixos-tests/tools/demo
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/portclaim/portclaim/nixos-tests/fixture"
	"github.com/portclaim/portclaim/nixos-tests/machine"
	"github.com/portclaim/portclaim/nixos-tests/nixeval"
)

const (
	system = "ollama.service"                 // stands in for NixOS's services.ollama
	user   = "podman-local-ai-ollama.service" // alice's home-manager container
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	if err := machine.Prereqs(); err != nil {
		return fmt.Errorf("%v (run .ci/run once to install them, as root)", err)
	}
	if err := nixeval.Available(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bins, err := build(ctx)
	if err != nil {
		return err
	}
	defer os.RemoveAll(bins)
	step("Render what the NixOS module installs for services.portclaim.yield.%q.users = [ \"alice\" ];", system)
	files, err := fixture.Render(ctx, map[string][]string{system: {"alice"}})
	if err != nil {
		return err
	}
	for _, p := range []string{"/etc/portclaim/policy.json", "/etc/systemd/system/" + system + ".d/portclaim-" + system + ".conf", "/etc/systemd/system/portclaim.socket"} {
		fmt.Println(indent(p + ":\n" + strings.TrimSpace(files[p].Content)))
	}

	step("Boot a Debian systemd with systemd-nspawn (alice lingers, units in /etc/systemd/system as on NixOS)")
	m, err := machine.Boot(ctx, machine.Config{BindRO: map[string]string{
		filepath.Join(bins, "portclaim"): "/usr/local/bin/portclaim",
		filepath.Join(bins, "holdport"):  "/usr/local/bin/holdport",
	}})
	if err != nil {
		return err
	}
	defer m.Close()
	if err := fixture.Install(ctx, m, files); err != nil {
		return err
	}
	if err := fixture.InstallUnit(ctx, m, system, fixture.Holder("tcp:127.0.0.1:11434"), true); err != nil {
		return err
	}
	if err := fixture.UserUnit(m, "alice", user, fixture.Holder("tcp::11434")); err != nil {
		return err
	}
	show(ctx, m, "root", "systemctl", "start", system)
	show(ctx, m, "alice", "systemctl", "--user", "daemon-reload")

	step("Without portclaim, alice's container cannot bind its port")
	show(ctx, m, "alice", "systemctl", "--user", "start", user)
	time.Sleep(time.Second)
	show(ctx, m, "root", "journalctl", "--no-pager", "-o", "cat", "_SYSTEMD_USER_UNIT="+user)

	step("portclaim check finds the conflict (built-in map: ollama, qdrant, llama-cpp, open-webui, mindsdb)")
	show(ctx, m, "alice", "portclaim", "check")

	step("portclaim resolve, as alice: the policy lets ollama.service yield to her, so the root broker stops it and keeps it down")
	show(ctx, m, "alice", "portclaim", "resolve")
	show(ctx, m, "root", "systemctl", "start", system)
	show(ctx, m, "root", "systemctl", "--no-pager", "status", system)

	step("home-manager's reloadSystemd would now start the container: it owns the port")
	show(ctx, m, "alice", "systemctl", "--user", "restart", user)
	time.Sleep(500 * time.Millisecond)
	show(ctx, m, "alice", "portclaim", "who", "11434")
	show(ctx, m, "alice", "portclaim", "status")

	step("The container leaves home.nix: sd-switch stops it, then release gives the port back")
	show(ctx, m, "alice", "systemctl", "--user", "stop", user)
	show(ctx, m, "alice", "portclaim", "release", "--all")
	show(ctx, m, "alice", "portclaim", "who", "11434")
	step("Done; the machine is torn down")
	return nil
}

func build(ctx context.Context) (string, error) {
	dir, err := os.MkdirTemp("", "portclaim-demo-")
	if err != nil {
		return "", err
	}
	for _, pkg := range []string{"./cmd/portclaim", "./nixos-tests/tools/holdport"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, filepath.Base(pkg)), pkg)
		cmd.Dir = nixeval.RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("building %s: %v\n%s", pkg, err, out)
		}
	}
	return dir, nil
}

func step(format string, args ...any) {
	fmt.Printf("\n== %s\n", fmt.Sprintf(format, args...))
}

// show runs a command inside the machine as user and prints it with its
// output, like a terminal session would.
func show(ctx context.Context, m *machine.Machine, user string, args ...string) {
	prompt := "$"
	if user == "root" {
		prompt = "#"
	}
	fmt.Printf("%s@machine %s %s\n", user, prompt, strings.Join(args, " "))
	var env []string
	if user == "alice" {
		env = fixture.UserEnv(1000) // a login shell would have it; portclaim does not need it
		if args[0] == "portclaim" {
			env = nil
		}
	}
	r := m.RunEnv(ctx, user, env, args...)
	out := strings.TrimRight(r.Stdout+r.Stderr, "\n")
	if out != "" {
		fmt.Println(indent(out))
	}
	if r.ExitCode != 0 {
		fmt.Printf("  (exit %d)\n", r.ExitCode)
	}
}

func indent(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") }
