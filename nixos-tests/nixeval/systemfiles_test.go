package nixeval

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/portclaim/portclaim/nixos-tests/golden"
	"github.com/portclaim/portclaim/pkg/policy"
)

// renderFiles writes files as one text, path by path, for golden files.
func renderFiles(files map[string]SystemFile) string {
	var paths []string
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var b strings.Builder
	for _, p := range paths {
		if f := files[p]; f.Symlink != "" {
			b.WriteString("# " + p + " -> " + f.Symlink + "\n")
		} else {
			b.WriteString("# " + p + "\n" + f.Content)
			if !strings.HasSuffix(f.Content, "\n") {
				b.WriteString("\n# (no newline at the end)\n")
			}
		}
	}
	return b.String()
}

// TestSystemFilesGolden pins every file the NixOS module installs for the
// README's example policy plus a second user and a socket.
func TestSystemFilesGolden(t *testing.T) {
	need(t)
	files, err := SystemFiles(context.Background(), SystemFilesArgs{
		Portclaim: "/usr/local/bin/portclaim",
		Yield: map[string][]string{
			"ollama.service": {"alice"},
			"qdrant.service": {"bob", "alice", "bob"},
			"qdrant.socket":  {"alice"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "systemfiles.golden"), renderFiles(files))
}

// TestSystemFilesContract checks what the broker, reconcile and the
// end-to-end machines rely on, independently of the golden file.
func TestSystemFilesContract(t *testing.T) {
	need(t)
	ctx := context.Background()
	files, err := SystemFiles(ctx, SystemFilesArgs{
		Portclaim: "/usr/local/bin/portclaim",
		Yield:     map[string][]string{"ollama.service": {"alice"}, "qdrant.socket": {"bob", "alice"}},
		ClaimsDir: "/srv/claims",
	})
	if err != nil {
		t.Fatal(err)
	}
	for path, f := range files {
		if !strings.HasPrefix(path, "/etc/") || (f.Content == "") == (f.Symlink == "") {
			t.Errorf("%s: %+v: want a path under /etc with exactly one of content and symlink", path, f)
		}
		if f.Symlink != "" {
			if _, ok := files[f.Symlink]; !ok {
				t.Errorf("%s links to %s, which systemFiles does not install", path, f.Symlink)
			}
		}
	}
	want := `{"claimsDir":"/srv/claims","version":1,"yield":[{"unit":"ollama.service","users":["alice"]},{"unit":"qdrant.socket","users":["alice","bob"]}]}`
	if got := files["/etc/portclaim/policy.json"].Content; got != want {
		t.Errorf("policy.json = %s, want %s", got, want)
	}
	p, err := policy.Parse("policy.json", []byte(files["/etc/portclaim/policy.json"].Content))
	if err != nil || !p.Allows("bob", "qdrant.socket") || p.Allows("bob", "ollama.service") || p.ClaimsDir != "/srv/claims" {
		t.Errorf("the Go policy reader reads %+v, %v", p, err)
	}
	if got, want := files["/etc/systemd/system/qdrant.socket.d/portclaim-qdrant.socket.conf"].Content,
		"[Unit]\nConditionPathExists=!/srv/claims/alice/qdrant.socket\nConditionPathExists=!/srv/claims/bob/qdrant.socket\nAfter=portclaim-move-claims.service\n"; got != want {
		t.Errorf("qdrant.socket's drop-in = %q, want %q", got, want)
	}
	if got := files["/etc/tmpfiles.d/portclaim.conf"].Content; got != "d /srv/claims 0755 root root -\n" {
		t.Errorf("tmpfiles = %q", got)
	}
	for _, unit := range []string{"portclaim.service", "portclaim-reconcile.service"} {
		text := files["/etc/systemd/system/"+unit].Content
		for _, line := range []string{"ReadWritePaths=/srv/claims", "ProtectSystem=strict", "CapabilityBoundingSet=\n", "RestrictAddressFamilies=AF_UNIX AF_NETLINK"} {
			if !strings.Contains(text, line) {
				t.Errorf("%s lacks %q:\n%s", unit, line, text)
			}
		}
	}
	if !strings.Contains(files["/etc/systemd/system/portclaim.socket"].Content, "ListenStream=/run/portclaim/broker.sock\nSocketMode=0666\n") {
		t.Errorf("portclaim.socket: %s", files["/etc/systemd/system/portclaim.socket"].Content)
	}
	for link, target := range map[string]string{
		"/etc/systemd/system/sockets.target.wants/portclaim.socket":               "/etc/systemd/system/portclaim.socket",
		"/etc/systemd/system/multi-user.target.wants/portclaim-reconcile.service": "/etc/systemd/system/portclaim-reconcile.service",
	} {
		if files[link].Symlink != target {
			t.Errorf("%s = %+v, want a link to %s", link, files[link], target)
		}
	}
	for path := range files {
		if strings.Contains(path, "metrics") {
			t.Errorf("%s installed without a textfile directory", path)
		}
	}

	// Another policy restarts reconcile on that switch: its unit file changes.
	other, err := SystemFiles(ctx, SystemFilesArgs{Portclaim: "/usr/local/bin/portclaim", Yield: map[string][]string{"ollama.service": {"alice"}}, ClaimsDir: "/srv/claims"})
	if err != nil {
		t.Fatal(err)
	}
	r := "/etc/systemd/system/portclaim-reconcile.service"
	if other[r].Content == files[r].Content || !strings.Contains(other[r].Content, "X-Restart-Triggers=") {
		t.Errorf("portclaim-reconcile.service does not change with the policy:\n%s", other[r].Content)
	}
	if _, ok := other["/etc/systemd/system/qdrant.socket.d/portclaim-qdrant.socket.conf"]; ok {
		t.Error("a unit that left the policy keeps its drop-in")
	}
}

func TestSystemFilesMetrics(t *testing.T) {
	need(t)
	files, err := SystemFiles(context.Background(), SystemFilesArgs{
		Portclaim:         "/p/bin/portclaim",
		TextfileDirectory: "/var/lib/prometheus-node-exporter/text",
	})
	if err != nil {
		t.Fatal(err)
	}
	svc := files["/etc/systemd/system/portclaim-metrics.service"].Content
	for _, line := range []string{
		"ExecStart=/p/bin/portclaim status --format prometheus --output /var/lib/prometheus-node-exporter/text/portclaim.prom\n",
		"ProtectHome=read-only\n", "ReadWritePaths=/var/lib/prometheus-node-exporter/text\n", "Type=oneshot\n",
	} {
		if !strings.Contains(svc, line) {
			t.Errorf("portclaim-metrics.service lacks %q:\n%s", line, svc)
		}
	}
	if strings.Contains(svc, "RemainAfterExit") {
		t.Error("portclaim-metrics.service remains active: switches would not run it again")
	}
	if files["/etc/systemd/system/timers.target.wants/portclaim-metrics.timer"].Symlink != "/etc/systemd/system/portclaim-metrics.timer" ||
		!strings.Contains(files["/etc/systemd/system/portclaim-metrics.timer"].Content, "OnCalendar=") {
		t.Errorf("the metrics timer is missing or not enabled: %+v", files)
	}
	if files["/etc/systemd/system/multi-user.target.wants/portclaim-metrics.service"].Symlink == "" {
		t.Error("portclaim-metrics.service is not wanted by multi-user.target: it would not run after a switch")
	}
}

// TestSystemFilesRejectsBadNames: names the Go policy reader refuses
// never reach a machine.
func TestSystemFilesRejectsBadNames(t *testing.T) {
	need(t)
	for _, a := range []SystemFilesArgs{
		{Yield: map[string][]string{"olama": {"alice"}}},
		{Yield: map[string][]string{"multi-user.target": {"alice"}}},
		{Yield: map[string][]string{"web@.service": {"alice"}}},
		{Yield: map[string][]string{"ollama.service": {"alice smith"}}},
		{Yield: map[string][]string{"ollama.service": {"alice"}}, ClaimsDir: "/var/lib/../lib/portclaim"},
	} {
		a.Portclaim = "/p"
		if files, err := SystemFiles(context.Background(), a); err == nil {
			t.Errorf("%+v accepted: %v", a, files["/etc/portclaim/policy.json"])
		} else if !strings.Contains(err.Error(), "portclaim: ") {
			t.Errorf("%+v: %v, want portclaim's message", a, err)
		}
	}
}

// TestMetricsTmpfilesLeaveASharedDirectoryAlone: the textfile directory
// is often the node exporter's, shared with other writers: tmpfiles
// creates it when it is missing and never re-owns or re-modes it.
func TestMetricsTmpfilesLeaveASharedDirectoryAlone(t *testing.T) {
	need(t)
	if _, err := exec.LookPath("systemd-tmpfiles"); err != nil || os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI runs this as root with systemd-tmpfiles (%v, uid %d)", err, os.Geteuid())
		}
		t.Skip("needs root and systemd-tmpfiles")
	}
	const dir = "/var/lib/prometheus-node-exporter/textfile"
	files, err := SystemFiles(context.Background(), SystemFilesArgs{Portclaim: "/bin/portclaim", TextfileDirectory: dir})
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "portclaim.conf")
	if err := os.WriteFile(conf, []byte(files["/etc/tmpfiles.d/portclaim.conf"].Content), 0o644); err != nil {
		t.Fatal(err)
	}
	tmpfiles := func(root string) {
		t.Helper()
		if out, err := exec.Command("systemd-tmpfiles", "--create", "--root="+root, conf).CombinedOutput(); err != nil {
			t.Fatalf("systemd-tmpfiles: %v\n%s", err, out)
		}
	}
	// An existing directory, someone else's.
	root := t.TempDir()
	shared := filepath.Join(root, dir)
	if err := os.MkdirAll(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(shared, 1234, 1234); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(shared, 0o2775); err != nil {
		t.Fatal(err)
	}
	tmpfiles(root)
	var st syscall.Stat_t
	if err := syscall.Stat(shared, &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 1234 || st.Gid != 1234 || st.Mode&0o7777 != 0o2775 {
		t.Errorf("tmpfiles changed the shared directory to uid %d gid %d mode %o", st.Uid, st.Gid, st.Mode&0o7777)
	}
	// A missing one is created, root's, 0755, and so is the claims directory.
	root = t.TempDir()
	tmpfiles(root)
	for _, d := range []string{dir, "/var/lib/portclaim/claims"} {
		if err := syscall.Stat(filepath.Join(root, d), &st); err != nil || st.Uid != 0 || st.Mode&0o7777 != 0o755 {
			t.Errorf("%s: %v, uid %d mode %o; want root's 0755", d, err, st.Uid, st.Mode&0o7777)
		}
	}
}
