// End-to-end scenarios: portclaim against a real systemd (system manager,
// D-Bus, polkitd, alice's lingering user manager) booted with
// systemd-nspawn. System units live in /etc/systemd/system as on NixOS.
// Each scenario runs portclaim as alice and as root and asserts on its
// exit code, its attribution and systemd's state.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portclaim/portclaim/nixos-tests/fixture"
	"github.com/portclaim/portclaim/nixos-tests/machine"
	"github.com/portclaim/portclaim/nixos-tests/nixeval"
	"github.com/portclaim/portclaim/pkg/report"
)

// m is the machine every scenario shares; scenarios use distinct ports and
// units and clean up after themselves.
var m *machine.Machine

func TestMain(main *testing.M) {
	os.Exit(runMain(main))
}

func runMain(main *testing.M) int {
	err := machine.Prereqs()
	if err == nil {
		err = nixeval.Available()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			fmt.Fprintf(os.Stderr, "FAIL: end-to-end tests must run in CI, but: %v\n", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "end-to-end tests skipped: they need root and systemd-nspawn: %v\n", err)
		return main.Run() // every test skips itself, see need()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bins, err := os.MkdirTemp("", "portclaim-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(bins)
	for _, pkg := range []string{"./cmd/portclaim", "./nixos-tests/tools/holdport", "./nixos-tests/tools/brokerask", "./nixos-tests/tools/sdswitch"} {
		out := filepath.Join(bins, filepath.Base(pkg))
		// Tag e2e: portclaim with the test hooks, which pause or kill
		// the broker where its unit's environment asks (package
		// yield/testhooks); a production build has none.
		cmd := exec.CommandContext(ctx, "go", "build", "-tags", "e2e", "-o", out, pkg)
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", pkg, err, b)
			return 1
		}
	}
	installed, err = fixture.Render(ctx, yieldTo)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rendering what the NixOS module installs (nix/lib.nix systemFiles): %v\n", err)
		return 1
	}
	m, err = machine.Boot(ctx, machine.Config{
		BindRO: map[string]string{
			filepath.Join(bins, "portclaim"): "/usr/local/bin/portclaim",
			filepath.Join(bins, "holdport"):  "/usr/local/bin/holdport",
			filepath.Join(bins, "brokerask"): "/usr/local/bin/brokerask",
			filepath.Join(bins, "sdswitch"):  fixture.SDSwitch,
		},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "booting the test machine: %v\n", err)
		return 1
	}
	defer m.Close()
	if err := fixture.Install(ctx, m, installed); err != nil {
		fmt.Fprintf(os.Stderr, "installing what the NixOS module installs: %v\n", err)
		return 1
	}
	return main.Run()
}

// need skips a test where the machine could not be booted (not root, not
// CI). In CI, TestMain has already failed instead.
func need(t *testing.T) context.Context {
	t.Helper()
	if m == nil {
		t.Skip("needs root, systemd-nspawn and mmdebstrap (see README); run as root or with CI=true")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// runner is who runs portclaim: alice herself, or root checking alice's
// units with --user alice.
type runner struct {
	name  string
	user  string
	extra []string
}

var runners = []runner{{"alice", "alice", nil}, {"root", "root", []string{"--user", "alice"}}}

// must runs a command as user and fails the test unless it exits 0.
func must(t *testing.T, ctx context.Context, user string, args ...string) string {
	t.Helper()
	r := m.Run(ctx, user, args...)
	if r.ExitCode != 0 {
		t.Fatalf("%s", r)
	}
	return r.Stdout
}

// systemUnit installs a system unit in /etc/systemd/system (where NixOS
// keeps every unit) running holdport, and starts it unless start is false.
// wanted links it into multi-user.target.wants as NixOS does for wantedBy.
func systemUnit(t *testing.T, ctx context.Context, name, extra string, start, wanted bool, listen ...string) {
	t.Helper()
	installUnit(t, ctx, name, fixture.Holder(listen...)+extra+"\n", wanted)
	keepsInvariant(t, name)
	if start {
		must(t, ctx, "root", "systemctl", "start", name)
		waitListening(t, ctx, listen...)
	}
}

// installUnit installs /etc/systemd/system/<name> (fixture.InstallUnit)
// and removes it, its claim and any mask after the test.
func installUnit(t *testing.T, ctx context.Context, name, body string, wanted bool) {
	t.Helper()
	if err := fixture.InstallUnit(ctx, m, name, body, wanted); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		m.Run(ctx, "root", "systemctl", "stop", name)
		os.Remove(filepath.Join(m.Root(), "etc/systemd/system", name))
		os.Remove(filepath.Join(m.Root(), "etc/systemd/system/multi-user.target.wants", name))
		m.Run(ctx, "root", "sh", "-c", fmt.Sprintf("rm -f %s/*/%s %s/*/.releasing/%s /run/systemd/transient/%s", claimsDir, name, claimsDir, name, name))
		m.Run(ctx, "root", "systemctl", "daemon-reload")
		m.Run(ctx, "root", "systemctl", "reset-failed")
	})
}

// userUnit installs a user unit for owner in ~/.config/systemd/user.
func userUnit(t *testing.T, ctx context.Context, owner, name string, listen ...string) {
	t.Helper()
	if err := fixture.UserUnit(m, owner, name, fixture.Holder(listen...)); err != nil {
		t.Fatal(err)
	}
	userctl(t, ctx, owner, "daemon-reload")
	t.Cleanup(func() {
		ctx := context.Background()
		m.RunEnv(ctx, owner, userEnv(owner), "systemctl", "--user", "disable", "--now", name)
		os.Remove(filepath.Join(m.Root(), fmt.Sprintf("/home/%s/.config/systemd/user/%s", owner, name)))
		m.RunEnv(ctx, owner, userEnv(owner), "systemctl", "--user", "daemon-reload")
		m.RunEnv(ctx, owner, userEnv(owner), "systemctl", "--user", "reset-failed")
	})
}

func userEnv(owner string) []string {
	return fixture.UserEnv(map[string]int{"alice": 1000, "bob": 1001}[owner])
}

func userctl(t *testing.T, ctx context.Context, owner string, args ...string) machine.Result {
	t.Helper()
	r := m.RunEnv(ctx, owner, userEnv(owner), append([]string{"systemctl", "--user"}, args...)...)
	if r.ExitCode != 0 && args[0] != "is-active" && args[0] != "is-failed" {
		t.Fatalf("%s", r)
	}
	return r
}

// waitListening waits until ss inside the machine shows a socket for
// every "proto:addr:port" spec. (ss prints a dual-stack [::] as "*", so
// match on the port.)
func waitListening(t *testing.T, ctx context.Context, specs ...string) {
	t.Helper()
	for _, spec := range specs {
		flag := "-Htln"
		if strings.HasPrefix(spec, "udp") {
			flag = "-Huln"
		}
		port := spec[strings.LastIndexByte(spec, ':'):]
		waitUntil(t, ctx, spec+" listening", func() (bool, string) {
			out := m.Run(ctx, "root", "ss", flag).Stdout
			return strings.Contains(out, port+" "), "ss " + flag + ":\n" + out
		})
	}
}

// manifest writes a manifest readable by alice and returns its path.
func manifest(t *testing.T, name, body string) string {
	t.Helper()
	path := "/etc/portclaim-test/" + name + ".json"
	if err := m.WriteFile(path, []byte(body), 0o644, ""); err != nil {
		t.Fatal(err)
	}
	return path
}

// oneService is a manifest with one service claiming one port.
func oneService(name, systemUnit, userUnit string, port int, address string) string {
	return fmt.Sprintf(`{"version":1,"services":[{"name":%q,"systemUnits":[%q],"userUnits":[%q],"ports":[{"port":%d,"protocol":"tcp","address":%q}]}]}`,
		name, systemUnit, userUnit, port, address)
}

// check runs `portclaim check --json` as r and decodes the report.
func check(t *testing.T, ctx context.Context, r runner, manifestPath string) (report.CheckDoc, machine.Result) {
	t.Helper()
	args := append([]string{"portclaim", "check", "--json", "--manifest", manifestPath}, r.extra...)
	res := m.Run(ctx, r.user, args...)
	var doc report.CheckDoc
	if err := json.Unmarshal([]byte(res.Stdout), &doc); err != nil {
		t.Fatalf("check output is not the JSON report: %v\n%s", err, res)
	}
	return doc, res
}

// oneConflict runs check as r and returns its one conflict, failing the
// test unless check found exactly one and exited 1.
func oneConflict(t *testing.T, ctx context.Context, r runner, path string) report.Conflict {
	t.Helper()
	doc, res := check(t, ctx, r, path)
	if res.ExitCode != 1 || len(doc.Conflicts) != 1 {
		t.Fatalf("as %s: want exit 1 and one conflict\n%s", r.name, res)
	}
	return doc.Conflicts[0]
}

func mainPID(t *testing.T, ctx context.Context, unit string) int {
	t.Helper()
	var pid int
	fmt.Sscanf(must(t, ctx, "root", "systemctl", "show", "-P", "MainPID", unit), "%d", &pid)
	return pid
}

func isActive(ctx context.Context, unit string) string {
	return strings.TrimSpace(m.Run(ctx, "root", "systemctl", "is-active", unit).Stdout)
}

// wantConfidence is what each runner can know of a socket that is not
// alice's own: root reads the holder's fds; alice sees only uids and cgroups.
func wantConfidence(r runner) string {
	if r.user == "root" {
		return "confirmed"
	}
	return "probable"
}

func TestNothingHeld(t *testing.T) {
	ctx := need(t)
	path := manifest(t, "free", oneService("free", "pc-free.service", "podman-free.service", 7100, ""))
	for _, r := range runners {
		doc, res := check(t, ctx, r, path)
		if res.ExitCode != 0 || len(doc.Conflicts) != 0 || len(doc.Ports) != 1 || doc.Ports[0].Status != "free" {
			t.Errorf("as %s: want exit 0 and 7100 free\n%s", r.name, res)
		}
		if len(doc.Errors) != 0 || len(doc.Notes) != 0 {
			t.Errorf("as %s: want a complete view (system bus and alice's manager), got errors %q notes %q", r.name, doc.Errors, doc.Notes)
		}
	}
}

func TestSystemUnitOnLoopbackBlocksUserUnit(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-loop.service", "", true, false, "tcp:127.0.0.1:7101")
	userUnit(t, ctx, "alice", "podman-loop.service", "tcp::7101")
	path := manifest(t, "loop", oneService("loop", "pc-loop.service", "podman-loop.service", 7101, ""))
	pid := mainPID(t, ctx, "pc-loop.service")
	for _, r := range runners {
		c := oneConflict(t, ctx, r, path)
		h := c.Holder
		if c.Kind != "resolvable" || c.Port != 7101 || c.HeldAt != "127.0.0.1" || c.UserUnit != "podman-loop.service" ||
			h.Manager != "system" || h.Unit != "pc-loop.service" || h.PID != pid || h.Command != "holdport" ||
			h.Confidence != wantConfidence(r) {
			t.Errorf("as %s: conflict %+v holder %+v; want resolvable, held at 127.0.0.1 by system pc-loop.service pid %d holdport, %s",
				r.name, c, *h, pid, wantConfidence(r))
		}
		// pc-loop.service is not in the policy: alice needs the
		// administrator (or root, now); root may make it yield itself.
		// No option is guessed from the unit's name.
		want := []string{`services.portclaim.yield."pc-loop.service".users = [ "alice" ];`, "sudo portclaim resolve --user alice"}
		if r.user == "root" {
			want = []string{"root may make pc-loop.service yield to alice", "portclaim resolve --user alice"}
		}
		for _, w := range want {
			if !strings.Contains(c.Next, w) {
				t.Errorf("as %s: next step %q lacks %q", r.name, c.Next, w)
			}
		}
		if strings.Contains(c.Next, "services.pc-loop.enable") {
			t.Errorf("as %s: next step %q names an option that does not exist", r.name, c.Next)
		}
	}
	// The human report says the same, with who can fix it.
	text := m.Run(ctx, "alice", "portclaim", "check", "--manifest", path)
	t.Logf("portclaim check as alice:\n%s", text.Stdout)
	for _, want := range []string{"CONFLICT  7101/tcp   loop [admin]", "system pc-loop.service", "127.0.0.1:7101", "your podman-loop.service wants *:7101",
		"fix: the system policy does not let pc-loop.service yield to you"} {
		if !strings.Contains(text.Stdout, want) {
			t.Errorf("human report lacks %q:\n%s", want, text)
		}
	}
	// And what the user would see without portclaim: the user unit fails.
	userctl(t, ctx, "alice", "start", "podman-loop.service")
	waitUntil(t, ctx, "podman-loop.service failing, its port held", func() (bool, string) {
		r := userctl(t, ctx, "alice", "is-failed", "podman-loop.service")
		return r.ExitCode == 0, r.Stdout
	})
	// journald writes what the unit said a moment after systemd marks it
	// failed: wait for the line, not for a fixed time.
	journalSays(t, ctx, "the user unit's journal", []string{"bind: address already in use"}, "_SYSTEMD_USER_UNIT=podman-loop.service")
	if isActive(ctx, "pc-loop.service") != "active" {
		t.Error("check changed the system unit's state")
	}
}

func TestDistinctLoopbackAddressesDoNotConflict(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-lo2.service", "", true, false, "tcp:127.0.0.2:7102")
	path := manifest(t, "lo3", oneService("lo3", "pc-lo2.service", "podman-lo3.service", 7102, "127.0.0.3"))
	for _, r := range runners {
		doc, res := check(t, ctx, r, path)
		if res.ExitCode != 0 || len(doc.Conflicts) != 0 || doc.Ports[0].Status != "free" {
			t.Errorf("as %s: 127.0.0.2:7102 held, 127.0.0.3:7102 claimed: want exit 0, free\n%s", r.name, res)
		}
	}
	// The kernel agrees: alice can bind 127.0.0.3:7102 right now.
	userUnit(t, ctx, "alice", "podman-lo3.service", "tcp:127.0.0.3:7102")
	userctl(t, ctx, "alice", "start", "podman-lo3.service")
	waitListening(t, ctx, "tcp:127.0.0.3:7102")
}

func TestDualStackWildcardBlocksIPv4(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-v6.service", "", true, false, "tcp:[::]:7103")
	path := manifest(t, "v6", oneService("v6", "pc-v6.service", "podman-v6.service", 7103, "0.0.0.0"))
	for _, r := range runners {
		doc, res := check(t, ctx, r, path)
		if res.ExitCode != 1 || len(doc.Conflicts) != 1 || doc.Conflicts[0].HeldAt != "::" || doc.Conflicts[0].Holder.Unit != "pc-v6.service" {
			t.Errorf("as %s: [::]:7103 held, 0.0.0.0:7103 claimed: want a conflict with pc-v6.service at ::\n%s", r.name, res)
		}
	}
}

func TestUndeclaredSystemUnitIsReportedNotTouched(t *testing.T) {
	ctx := need(t)
	// DynamicUser, as many NixOS services run: its uid is its own.
	systemUnit(t, ctx, "pc-other.service", "DynamicUser=yes", true, false, "tcp4:0.0.0.0:7104")
	path := manifest(t, "other", oneService("other", "pc-declared.service", "podman-other.service", 7104, ""))
	for _, r := range runners {
		c := oneConflict(t, ctx, r, path)
		if c.Kind != "system-other" || c.Holder.Unit != "pc-other.service" || c.Holder.Confidence != wantConfidence(r) ||
			!strings.Contains(c.Next, "other does not name pc-other.service") || !strings.Contains(c.Next, "systemctl stop pc-other.service") {
			t.Errorf("as %s: got %+v %+v; want system-other naming pc-other.service", r.name, c, *c.Holder)
		}
	}
	if isActive(ctx, "pc-other.service") != "active" {
		t.Error("check stopped a unit the manifest does not name")
	}
}

func TestAnotherUsersUnit(t *testing.T) {
	ctx := need(t)
	must(t, ctx, "root", "systemctl", "start", "user@1001.service")
	t.Cleanup(func() { m.Run(context.Background(), "root", "systemctl", "stop", "user@1001.service") })
	userUnit(t, ctx, "bob", "podman-shared.service", "tcp::7105")
	userctl(t, ctx, "bob", "start", "podman-shared.service")
	waitListening(t, ctx, "tcp:*:7105")
	path := manifest(t, "shared", oneService("shared", "pc-shared.service", "podman-shared.service", 7105, ""))
	for _, r := range runners {
		c := oneConflict(t, ctx, r, path)
		if c.Kind != "other-user" || c.Holder.Manager != "user bob" || c.Holder.Unit != "podman-shared.service" || c.Holder.Confidence != wantConfidence(r) {
			t.Errorf("as %s: got %+v %+v; want other-user, bob's podman-shared.service", r.name, c, *c.Holder)
		}
	}
}

func TestProcessOutsideAnyUnit(t *testing.T) {
	ctx := need(t)
	// Started from outside systemd (as a stray shell job would be), as
	// nobody: it belongs to no unit.
	must(t, ctx, "root", "sh", "-c",
		"setpriv --reuid=65534 --regid=65534 --clear-groups /usr/local/bin/holdport tcp4:0.0.0.0:7106 >/dev/null 2>&1 & echo $! > /run/outside.pid")
	t.Cleanup(func() { m.Run(context.Background(), "root", "sh", "-c", "kill $(cat /run/outside.pid)") })
	waitListening(t, ctx, "tcp4:0.0.0.0:7106")
	var pid int
	fmt.Sscanf(must(t, ctx, "root", "cat", "/run/outside.pid"), "%d", &pid)
	path := manifest(t, "outside", oneService("outside", "pc-outside.service", "podman-outside.service", 7106, ""))
	for _, r := range runners {
		c := oneConflict(t, ctx, r, path)
		if c.Kind != "no-unit" || c.Holder.Unit != "" || c.Holder.PID != pid || c.Holder.Command != "holdport" {
			t.Errorf("as %s: got %+v %+v; want no-unit, pid %d holdport", r.name, c, c.Holder, pid)
		}
	}
}

func TestEnabledButStoppedIsLatent(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-latent.service", "", false, true, "tcp4:0.0.0.0:7107")
	if got := strings.TrimSpace(m.Run(ctx, "root", "systemctl", "is-enabled", "pc-latent.service").Stdout); got != "enabled" {
		t.Fatalf("is-enabled = %q; the NixOS-style wants link should make it enabled", got)
	}
	path := manifest(t, "latent", oneService("latent", "pc-latent.service", "podman-latent.service", 7107, ""))
	for _, r := range runners {
		c := oneConflict(t, ctx, r, path)
		if c.Kind != "latent" || c.SystemUnit != "pc-latent.service" || !strings.Contains(c.Next, "7107/tcp at boot") {
			t.Errorf("as %s: got %+v; want latent pc-latent.service", r.name, c)
		}
	}
	if isActive(ctx, "pc-latent.service") != "inactive" {
		t.Error("check started or changed the latent unit")
	}
}

func TestMalformedManifests(t *testing.T) {
	ctx := need(t)
	svc := func(units, ports string) string {
		return fmt.Sprintf(`{"version":1,"services":[{"name":"a","systemUnits":%s,"userUnits":["podman-a.service"],"ports":%s}]}`, units, ports)
	}
	cases := []struct{ name, body, want string }{
		{"version", `{"version":3,"services":[]}`, "version: 3 is not supported"},
		{"duplicate key", svc(`[]`, `[{"port":7110,"port":70000}]`), "services[0].ports[0].port: is given twice in one object"},
		{"unit", svc(`["../etc/passwd"]`, `[{"port":7110}]`), `services[0].systemUnits[0]: unit name "../etc/passwd" contains "/"`},
		{"port", svc(`[]`, `[{"port":70000}]`), "services[0].ports[0].port: 70000 is not a port"},
		{"duplicate", `{"version":1,"services":[{"name":"a","userUnits":["a.service"],"ports":[{"port":7111}]},{"name":"b","userUnits":["b.service"],"ports":[{"port":7111}]}]}`,
			`services[1].ports: 7111/tcp is also claimed by service "a"`},
		{"json", `{"version":1,`, "not valid JSON"},
	}
	for _, c := range cases {
		path := manifest(t, "bad-"+c.name, c.body)
		for _, r := range runners {
			check := append([]string{"portclaim", "check", "--manifest", path}, r.extra...)
			for _, args := range [][]string{check, {"portclaim", "validate", path}} {
				res := m.Run(ctx, r.user, args...)
				if res.ExitCode != 2 || !strings.Contains(res.Stderr, c.want) || res.Stdout != "" {
					t.Errorf("%s as %s: want exit 2, nothing on stdout, and %q on stderr\n%s", c.name, r.name, c.want, res)
				}
			}
		}
	}
}

func TestUserManagerNotRunning(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-nouser.service", "", true, false, "tcp:127.0.0.1:7108")
	path := manifest(t, "nouser", oneService("nouser", "pc-nouser.service", "podman-nouser.service", 7108, ""))
	must(t, ctx, "root", "systemctl", "stop", "user@1000.service")
	t.Cleanup(func() { m.Run(context.Background(), "root", "systemctl", "start", "user@1000.service") })
	for _, r := range runners {
		doc, res := check(t, ctx, r, path)
		if res.ExitCode != 1 || len(doc.Conflicts) != 1 || doc.Conflicts[0].Holder.Unit != "pc-nouser.service" {
			t.Errorf("as %s: want the system side still reported (exit 1, pc-nouser.service)\n%s", r.name, res)
		}
		if len(doc.Notes) != 1 || !strings.Contains(doc.Notes[0], "user manager of uid 1000 is not running") {
			t.Errorf("as %s: want a note that alice's user manager is not running, got %q", r.name, doc.Notes)
		}
	}
}

// TestOneDBusCallPerManager: however many units the manifest names, check
// asks each manager once (ListUnitsByNames), when no unit is a latent
// candidate that needs its unit file state.
func TestOneDBusCallPerManager(t *testing.T) {
	ctx := need(t)
	var services []string
	for i := 0; i < 60; i++ {
		services = append(services, fmt.Sprintf(`{"name":"s%d","systemUnits":["pc-many%d.service"],"userUnits":["podman-many%d.service"],"ports":[{"port":%d}]}`, i, i, i, 7300+i))
	}
	systemUnit(t, ctx, "pc-many0.service", "", true, false, "tcp4:127.0.0.1:7300")
	path := manifest(t, "many", `{"version":1,"services":[`+strings.Join(services, ",")+`]}`)
	for _, r := range runners {
		doc, res := check(t, ctx, r, path)
		if doc.DBusCalls["system"] != 1 || doc.DBusCalls["user"] != 1 {
			t.Errorf("as %s: D-Bus calls %v for 60 services, want one per manager\n%s", r.name, doc.DBusCalls, res)
		}
		if len(doc.Conflicts) != 1 || doc.Conflicts[0].Holder.Unit != "pc-many0.service" {
			t.Errorf("as %s: want the one conflict on 7300\n%s", r.name, res)
		}
	}
}

// TestUnprivilegedAttributionFollowsTheSocketsCgroup: a declared root unit
// runs (on another port) while an undeclared root unit holds the claimed
// port. Alice cannot read either's files; the uid alone would blame the
// declared unit. The kernel's cgroup id of the socket names the real one.
func TestUnprivilegedAttributionFollowsTheSocketsCgroup(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-decoy.service", "", true, false, "tcp4:127.0.0.1:7221")
	systemUnit(t, ctx, "pc-real.service", "", true, false, "tcp4:127.0.0.1:7220")
	path := manifest(t, "decoy", oneService("decoy", "pc-decoy.service", "podman-decoy.service", 7220, ""))
	pid := mainPID(t, ctx, "pc-real.service")
	for _, r := range runners {
		doc, res := check(t, ctx, r, path)
		if len(doc.Conflicts) != 1 {
			t.Fatalf("as %s: want one conflict\n%s", r.name, res)
		}
		c := doc.Conflicts[0]
		if c.Kind != "system-other" || c.Holder.Unit != "pc-real.service" || c.Holder.PID != pid || c.Holder.Confidence != wantConfidence(r) {
			t.Errorf("as %s: got %+v %+v; want system-other, pc-real.service pid %d, %s", r.name, c, *c.Holder, pid, wantConfidence(r))
		}
	}
}
