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
	var notRoots *NotRootsError
	if _, err := RootFile(mine, 100); !errors.As(err, &notRoots) || notRoots.UID != 1000 || !errors.Is(err, ErrNotRoots) {
		t.Errorf("alice's file: %v, want a NotRootsError naming uid 1000", err)
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
	// Within the store, links lead on (home-manager's files link to the
	// manifest's own store path), relative ones too.
	write(t, base+"/store/abc-hm-files/.config/portclaim/real.json", `{"v":2}`, 0o444, 0)
	os.Symlink("abc-hm-files", base+"/store/def-alias")
	os.Symlink("../../../abc-hm-files/.config/portclaim/real.json", base+"/store/abc-hm-files/.config/portclaim/manifest.json")
	os.Symlink(base+"/store/def-alias/.config/portclaim/manifest.json", home+"/.config/portclaim/chain.json")
	if data, err := UserFile(home+"/.config/portclaim/chain.json", 1000, 100); err != nil || string(data) != `{"v":2}` {
		t.Errorf("a chain of links within the store: %q, %v", data, err)
	}
	secret := write(t, base+"/root/secret", "shadow", 0o600, 0)
	os.Symlink(secret, home+"/.config/portclaim/evil.json")
	// Any user can build a store path that is a link back out of the
	// store, or has one inside.
	os.Symlink(secret, base+"/store/bad-out")
	os.Symlink(home+"/.config/portclaim/../../../../root/secret", base+"/store/bad-dotdot")
	write(t, base+"/store/bad-dir/x", "", 0o444, 0)
	os.Symlink("../../root", base+"/store/bad-dir/up")
	os.Symlink(base+"/store/bad-out", home+"/.config/portclaim/out.json")
	os.Symlink(base+"/store/bad-dotdot", home+"/.config/portclaim/dotdot.json")
	os.Symlink(base+"/store/bad-dir/up/secret", home+"/.config/portclaim/updir.json")
	os.Symlink(base+"/store/loop-a", base+"/store/loop-b")
	os.Symlink(base+"/store/loop-b", base+"/store/loop-a")
	os.Symlink(base+"/store/loop-a", home+"/.config/portclaim/loop.json")
	os.Symlink(base+"/root", home+"/.config/evil-dir")
	bobs := write(t, home+"/.config/portclaim/bob.json", "{}", 0o644, 1001)
	fifo := home + "/.config/portclaim/fifo.json"
	syscall.Mkfifo(fifo, 0o644)
	os.Chown(fifo, 1000, -1)
	for _, c := range []struct{ path, want string }{
		{home + "/.config/portclaim/evil.json", "follows links in a user's directory only into"},
		{home + "/.config/portclaim/out.json", "leads out of " + base + "/store/ (to \"" + secret + "\")"},
		{home + "/.config/portclaim/dotdot.json", "leads out of"},
		{home + "/.config/portclaim/updir.json", "leads out of"},
		{home + "/.config/portclaim/loop.json", "more than 40 links"},
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

// TestOnlyRegularFilesAreOpened: a FIFO (as a device or a terminal would
// be) reached through a user's link into the store, directly, or in the
// user's own directory is refused before it is opened: a writer waiting
// on it stays waiting, as it would for a device's open to act.
func TestOnlyRegularFilesAreOpened(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	StorePrefix = base + "/store/"
	t.Cleanup(func() { StorePrefix = "/nix/store/" })
	home := base + "/home/alice"
	if err := os.MkdirAll(base+"/store", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(home, 1000, -1)
	storeFIFO := base + "/store/abc-fifo"
	userFIFO := home + "/fifo.json"
	for _, f := range []string{storeFIFO, userFIFO} {
		if err := syscall.Mkfifo(f, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Chown(userFIFO, 1000, -1)
	// What alice can make: a store path that is a link to a device, and
	// her manifest a link to a store path.
	if err := os.Symlink("/dev/null", base+"/store/def-device"); err != nil {
		t.Fatal(err)
	}
	for link, to := range map[string]string{home + "/via-store.json": storeFIFO, home + "/device.json": base + "/store/def-device"} {
		if err := os.Symlink(to, link); err != nil {
			t.Fatal(err)
		}
	}
	reads := []struct {
		name string
		read func() ([]byte, error)
		fifo string
	}{
		{"a user's link into the store to a FIFO", func() ([]byte, error) { return UserFile(home+"/via-store.json", 1000, 100) }, storeFIFO},
		{"root's FIFO", func() ([]byte, error) { return RootFile(storeFIFO, 100) }, storeFIFO},
		{"a FIFO in the user's directory", func() ([]byte, error) { return UserFile(userFIFO, 1000, 100) }, userFIFO},
		{"a user's link into the store to a device", func() ([]byte, error) { return UserFile(home+"/device.json", 1000, 100) }, ""},
	}
	for _, r := range reads {
		opened := make(chan struct{})
		if r.fifo != "" {
			// A writer's open of a FIFO returns once a reader opens it.
			go func() {
				if f, err := os.OpenFile(r.fifo, os.O_WRONLY, 0); err == nil {
					close(opened)
					f.Close()
				}
			}()
			time.Sleep(50 * time.Millisecond)
		}
		_, err := r.read()
		if r.name == "a user's link into the store to a device" {
			// It is refused before anything outside the store is looked at.
			if err == nil || !strings.Contains(err.Error(), "leads out of") {
				t.Errorf("%s: %v, want it refused as leading out of the store", r.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("%s: %v, want it refused as not a regular file", r.name, err)
		}
		if r.fifo == "" {
			continue
		}
		select {
		case <-opened:
			t.Errorf("%s: it was opened (a writer waiting on it got through)", r.name)
		case <-time.After(200 * time.Millisecond):
			// Let the writer go: open the FIFO for reading ourselves.
			f, err := os.OpenFile(r.fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
			if err != nil {
				t.Fatal(err)
			}
			<-opened
			f.Close()
		}
	}
}

func TestReadFileIsBounded(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		body string
		ok   bool
	}{{"12345", true}, {"123456", false}} {
		path := filepath.Join(dir, "f")
		if err := os.WriteFile(path, []byte(c.body), 0o644); err != nil {
			t.Fatal(err)
		}
		data, err := ReadFile(path, 5)
		if c.ok && (err != nil || string(data) != c.body) {
			t.Errorf("%q: %q, %v", c.body, data, err)
		}
		if !c.ok && !errors.Is(err, ErrTooLarge) {
			t.Errorf("%q: %v, want ErrTooLarge", c.body, err)
		}
	}
	// Not a regular file: no size to go by, the limit still holds.
	if _, err := ReadFile("/dev/zero", 10); !errors.Is(err, ErrTooLarge) {
		t.Errorf("/dev/zero: %v", err)
	}
}
