package safeopen

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// needRoot skips where files cannot be given to other users; CI runs the
// tests as root.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs as root")
		}
		t.Skip("needs root to create files of other users")
	}
}

func write(t *testing.T, path, body string, mode os.FileMode, uid int) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(path, uid, -1); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRootFile(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	good := write(t, dir+"/etc/policy.json", "{}", 0o644, 0)
	if data, err := RootFile(good, 100); err != nil || string(data) != "{}" {
		t.Fatalf("root's file: %q, %v", data, err)
	}
	// A NixOS /etc entry is a link through /etc/static into the store.
	store := write(t, dir+"/store/abc-policy.json", "{}", 0o444, 0)
	if err := os.Symlink(store, dir+"/etc/linked.json"); err != nil {
		t.Fatal(err)
	}
	if _, err := RootFile(dir+"/etc/linked.json", 100); err != nil {
		t.Errorf("a link to root's file: %v", err)
	}
	mine := write(t, dir+"/etc/alice.json", "{}", 0o644, 1000)
	userDir := dir + "/home"
	write(t, userDir+"/x.json", "{}", 0o644, 0)
	os.Chown(userDir, 1000, -1)
	if err := os.Symlink(userDir+"/x.json", dir+"/etc/via-home.json"); err != nil {
		t.Fatal(err)
	}
	writable := write(t, dir+"/etc/writable.json", "{}", 0o666, 0)
	big := write(t, dir+"/etc/big.json", strings.Repeat("x", 200), 0o644, 0)
	fifo := dir + "/etc/fifo"
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{
		{mine, "it is uid 1000"},
		{dir + "/etc/via-home.json", "not trusting files under " + userDir},
		{writable, "writable by root only"},
		{big, "file too large"},
		{fifo, "not a regular file"},
	} {
		start := time.Now()
		_, err := RootFile(c.path, 100)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.path, err, c.want)
		}
		if time.Since(start) > time.Second {
			t.Errorf("%s: blocked", c.path)
		}
	}
}

func TestUserFile(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	home := base + "/home/alice"
	manifest := write(t, home+"/.config/portclaim/manifest.json", "{}", 0o644, 1000)
	for _, d := range []string{home, home + "/.config", home + "/.config/portclaim"} {
		os.Chown(d, 1000, -1)
	}
	if data, err := UserFile(manifest, 1000, 100); err != nil || string(data) != "{}" {
		t.Fatalf("alice's own manifest: %q, %v", data, err)
	}
	// home-manager links the manifest into the store.
	StorePrefix = base + "/store/"
	t.Cleanup(func() { StorePrefix = "/nix/store/" })
	storeFile := write(t, base+"/store/xyz-manifest.json", `{"v":1}`, 0o444, 0)
	link := home + "/.config/portclaim/linked.json"
	os.Symlink(storeFile, link)
	if data, err := UserFile(link, 1000, 100); err != nil || string(data) != `{"v":1}` {
		t.Errorf("a link into the store: %q, %v", data, err)
	}
	secret := write(t, base+"/root/secret", "shadow", 0o600, 0)
	os.Symlink(secret, home+"/.config/portclaim/evil.json")
	os.Symlink(base+"/root", home+"/.config/evil-dir")
	bobs := write(t, home+"/.config/portclaim/bob.json", "{}", 0o644, 1001)
	fifo := home + "/.config/portclaim/fifo.json"
	syscall.Mkfifo(fifo, 0o644)
	os.Chown(fifo, 1000, -1)
	for _, c := range []struct{ path, want string }{
		{home + "/.config/portclaim/evil.json", "follows links in a user's directory only into"},
		{home + "/.config/evil-dir/secret", "is a link or not a directory"},
		{bobs, "belongs to uid 1001"},
		{fifo, "not a regular file"},
		{home + "/.config/portclaim/missing.json", "no such file"},
	} {
		start := time.Now()
		_, err := UserFile(c.path, 1000, 100)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.path, err, c.want)
		}
		if time.Since(start) > time.Second {
			t.Errorf("%s: blocked", c.path)
		}
	}
	if _, err := UserFile(manifest, 1000, 1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("size bound: %v", err)
	}
}
