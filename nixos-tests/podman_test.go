package e2e

// The story portclaim exists for, with the real thing: the system's
// ollama.service holds 11434, alice's home-manager runs ollama in a
// rootless podman container publishing 11434 (and a UDP port), and the
// container fails with rootlessport's words. Her home-manager
// configuration is evaluated by home-manager's own modules; its container
// unit is the one the podman module generates (fixture.ContainerUnit, with
// fixture.Podman43's changes for Debian 12's podman); each switch runs the
// activation entries as home-manager renders them and sd-switch's steps.

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/portclaim/portclaim/nixos-tests/fixture"
	"github.com/portclaim/portclaim/nixos-tests/moduleeval"
)

func init() {
	yieldTo["ollama.service"] = []string{"alice"}
}

const (
	ollamaUnit = "ollama.service"
	container  = "podman-local-ai-ollama.service"
	ollamaUDP  = 7650
	// ollamaImage is made from holdport with podman import: no registry
	// is reachable from the test machines.
	ollamaImage = "localhost/pc-p-ollama:latest"
)

// ollamaHome is alice's home.nix: podman on, the container if withContainer,
// portclaim on if withPortclaim.
func ollamaHome(withContainer, withPortclaim bool) string {
	body := "services.podman.enable = true;\n"
	if withContainer {
		body += fmt.Sprintf(`services.podman.containers.local-ai-ollama = {
  image = %q;
  ports = [ "11434:11434" "%d:%d/udp" ];
  exec = "tcp:0.0.0.0:11434 udp:0.0.0.0:%d";
};
`, ollamaImage, ollamaUDP, ollamaUDP, ollamaUDP)
	}
	return fmt.Sprintf("{ %s services.portclaim.enable = %t; }", body, withPortclaim)
}

// podmanSettings are the files home-manager renders from services.podman
// .settings (TOML the stand-in package set cannot build): the storage
// driver home-manager sets by default, and keyring = false, which crun
// needs inside a user unit on these machines (it cannot create a session
// keyring there: "create keyring ...: Operation not permitted").
var podmanSettings = map[string]string{
	".config/containers/containers.conf": "[containers]\nkeyring = false\n",
	".config/containers/storage.conf":    "[storage]\ndriver = \"overlay\"\n",
}

// renderHome renders alice's home.nix body, failing the test if it cannot.
func renderHome(t *testing.T, ctx context.Context, module string) *fixture.Home {
	t.Helper()
	h, err := fixture.RenderHome(ctx, "alice", module, podmanSettings)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// homeSwitch runs alice's `home-manager switch` to h and returns what the
// activation printed; the activation must succeed (portclaim never fails
// it unless strict).
func homeSwitch(t *testing.T, ctx context.Context, h *fixture.Home) string {
	t.Helper()
	r, err := h.Switch(ctx, m, userEnv("alice"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("home-manager switch:\n%s%s", r.Stdout, r.Stderr)
	if r.ExitCode != 0 {
		t.Fatalf("home-manager switch failed:\n%s", r)
	}
	return r.Stdout + r.Stderr
}

// cleanHome gives alice's home back as it was: her units stopped, the
// generations' links, her podman storage and the generations gone.
func cleanHome(t *testing.T) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		env := userEnv("alice")
		m.RunEnv(ctx, "alice", env, "systemctl", "--user", "stop", container)
		m.RunEnv(ctx, "alice", env, "sh", "-c", `rm -rf ~/.config/systemd/user/podman-* ~/.config/systemd/user/*.wants/podman-* ~/.config/portclaim ~/.config/podman ~/.config/containers ~/.local/state/home-manager`)
		m.RunEnv(ctx, "alice", env, "podman", "system", "reset", "--force")
		m.RunEnv(ctx, "alice", env, "systemctl", "--user", "daemon-reload")
		m.RunEnv(ctx, "alice", env, "systemctl", "--user", "reset-failed")
		m.Run(ctx, "root", "sh", "-c", "rm -rf /nix/store/*-home-manager-generation /tmp/pc-p-ollama.tar")
	})
}

// importOllamaImage puts the container's image in alice's podman store, as
// a pull would: a static holdport, imported.
func importOllamaImage(t *testing.T, ctx context.Context) {
	t.Helper()
	must(t, ctx, "root", "tar", "-C", "/usr/local/bin", "-cf", "/tmp/pc-p-ollama.tar", "holdport")
	r := m.RunEnv(ctx, "alice", userEnv("alice"), "podman", "--storage-driver", "overlay", "import",
		"--change", `ENTRYPOINT ["/holdport"]`, "/tmp/pc-p-ollama.tar", ollamaImage)
	if r.ExitCode != 0 {
		t.Fatalf("podman import:\n%s", r)
	}
}

var rootlessportPID = regexp.MustCompile(`\("rootlessport",pid=(\d+),`)

// rootlessport returns the pid of the rootlessport holding port/proto,
// waiting for it: the container is up once its forwarder listens.
func rootlessport(t *testing.T, ctx context.Context, proto string, port int) string {
	t.Helper()
	flag := map[string]string{"tcp": "-Htlnp", "udp": "-Hulnp"}[proto]
	var pid string
	waitUntil(t, ctx, fmt.Sprintf("rootlessport holding %d/%s", port, proto), func() (bool, string) {
		out := m.Run(ctx, "root", "ss", flag, fmt.Sprintf("sport = :%d", port)).Stdout
		if mm := rootlessportPID.FindStringSubmatch(out); mm != nil {
			pid = mm[1]
			return true, ""
		}
		return false, out
	})
	return pid
}

// whoSays runs `portclaim who` for port/proto as alice and as root, and
// checks each names want.
func whoSays(t *testing.T, ctx context.Context, spec, want string) {
	t.Helper()
	for _, r := range runners {
		out := m.Run(ctx, r.user, "portclaim", "who", spec)
		if !strings.Contains(out.Stdout, want) {
			t.Errorf("portclaim who %s as %s: want %q\n%s", spec, r.name, want, out)
		}
	}
}

// needHomeManager skips a test that evaluates home-manager's modules where
// their sources are not (outside CI; under CI=true it fails instead).
func needHomeManager(t *testing.T) {
	t.Helper()
	if _, err := moduleeval.Sources(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI must evaluate alice's home-manager configuration: %v", err)
		}
		t.Skip(err)
	}
}

// TestRootlessPodmanContainerClaimsOllamasPort: the story portclaim exists
// for, whole, with a real rootless container.
func TestRootlessPodmanContainerClaimsOllamasPort(t *testing.T) {
	need(t)
	needHomeManager(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	// The system's ollama, where nixpkgs' module puts it: 127.0.0.1:11434,
	// wanted by multi-user.target; and a UDP port of the same service.
	// Type=notify: its start job says whether it got its ports.
	systemUnit(t, ctx, ollamaUnit, "Type=notify\nDynamicUser=yes", true, true,
		"tcp4:127.0.0.1:11434", fmt.Sprintf("udp4:0.0.0.0:%d", ollamaUDP))
	cleanHome(t)
	importOllamaImage(t, ctx)

	// Generation 1: the container, portclaim not yet on. sd-switch starts
	// it; it fails on the port, in rootlessport's words.
	gen1 := renderHome(t, ctx, ollamaHome(true, false))
	unit := gen1.Unit(container)
	for _, want := range []string{"Type=notify", "Restart=always", "--cidfile=%t/%N.cid --replace --rm", "--sdnotify=conmon -d",
		"--publish 11434:11434", fmt.Sprintf("--publish %d:%d/udp", ollamaUDP, ollamaUDP), "ExecStartPre=/bin/rm -f %t/%N.cid"} {
		if !strings.Contains(unit, want) {
			t.Errorf("the container's unit lacks %q:\n%s", want, unit)
		}
	}
	homeSwitch(t, ctx, gen1)
	waitUntil(t, ctx, "the container failing on 11434", func() (bool, string) {
		j := m.Run(ctx, "root", "journalctl", "--no-pager", "-o", "cat", "_SYSTEMD_USER_UNIT="+container).Stdout
		return strings.Contains(j, "Error: rootlessport listen tcp 0.0.0.0:11434: bind: address already in use"), j
	})

	// check, as alice and as root, from the built-in map: ollama.service
	// holds what alice's container wants.
	for _, r := range runners {
		res := m.Run(ctx, r.user, append([]string{"portclaim", "check"}, r.extra...)...)
		if res.ExitCode != 1 {
			t.Errorf("check as %s: want exit 1 (a conflict)\n%s", r.name, res)
		}
		// Root reads "alice's", alice reads "your".
		whose := "your "
		if r.user == "root" {
			whose = "alice's "
		}
		contains(t, "check as "+r.name, res.Stdout, "system "+ollamaUnit, whose+container, "11434/tcp")
	}

	// Generation 2: portclaim on. resolve (before reloadSystemd) makes
	// ollama.service yield; sd-switch's start of the active targets brings
	// the failed container up.
	gen2 := renderHome(t, ctx, ollamaHome(true, true))
	out := homeSwitch(t, ctx, gen2)
	contains(t, "the switch", out, "yielded  "+ollamaUnit+" to alice: stopped and claimed")
	// Release, the switch's last step, waits for the container between
	// its restarts: no false alarm that it does not hold its ports.
	lacks(t, "the switch", out, "does not hold it after the switch")
	if s := isActive(ctx, ollamaUnit); s != "inactive" {
		t.Fatalf("%s is %s after the switch", ollamaUnit, s)
	}
	pid := rootlessport(t, ctx, "tcp", 11434)
	whoSays(t, ctx, "11434", fmt.Sprintf("user alice's %s (pid %s rootlessport, confirmed)", container, pid))
	rootlessport(t, ctx, "udp", ollamaUDP)
	whoSays(t, ctx, fmt.Sprintf("%d/udp", ollamaUDP), fmt.Sprintf("user alice's %s (pid %s rootlessport, confirmed)", container, pid))
	afterSwitches(t, ctx)

	// A reboot: the claim keeps ollama.service down, alice's lingering
	// manager starts the container, the port is hers.
	if err := m.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	if s := isActive(ctx, ollamaUnit); s != "inactive" {
		t.Fatalf("%s is %s after the reboot", ollamaUnit, s)
	}
	contains(t, "systemctl status", m.Run(ctx, "root", "systemctl", "status", ollamaUnit).Stdout,
		"ConditionPathExists=!"+claimsDir+"/alice/"+ollamaUnit)
	pid = rootlessport(t, ctx, "tcp", 11434)
	whoSays(t, ctx, "11434", fmt.Sprintf("user alice's %s (pid %s rootlessport, confirmed)", container, pid))

	// The broker's own words for the holder: a release while the
	// container still holds the port waits for it.
	out, _ = portclaim(t, ctx, "alice", nil, "release", "--all")
	contains(t, "release while the container holds 11434", out,
		fmt.Sprintf("deferred %s: 11434/tcp is still held at [::]:11434 by user alice's %s (pid %s rootlessport", ollamaUnit, container, pid))
	// The broker's record names her unit, and no process of it but the
	// one that listens (slirp4netns, its lowest pid, does not).
	journal := journalSays(t, ctx, "the broker's journal", []string{"alice's " + container}, "-o", "cat", "PORTCLAIM_UNIT="+ollamaUnit, "PORTCLAIM_ACTION=defer")
	if strings.Contains(journal, "slirp4netns") {
		t.Errorf("the broker's journal names slirp4netns as the holder, not the listener:\n%s", journal)
	}

	// Generation 3: the container leaves home.nix. sd-switch stops it;
	// release, after reloadSystemd, gives the port back.
	gen3 := renderHome(t, ctx, ollamaHome(false, true))
	out = homeSwitch(t, ctx, gen3)
	contains(t, "the switch dropping the container", out, "released "+ollamaUnit+": started again")
	if s := isActive(ctx, ollamaUnit); s != "active" {
		t.Fatalf("%s is %s after the container left", ollamaUnit, s)
	}
	whoSays(t, ctx, "11434", "127.0.0.1:11434: system "+ollamaUnit)
	if _, ok := readClaim(t, ctx, ollamaUnit); ok {
		t.Error("the claim stayed after the release")
	}
	if r := m.RunEnv(ctx, "alice", userEnv("alice"), "podman", "ps", "-a", "--format", "{{.Names}}"); strings.TrimSpace(r.Stdout) != "" {
		t.Errorf("containers left after the switch that dropped them:\n%s", r)
	}
	afterSwitches(t, ctx)
}
