// The cached Debian rootfs the machines boot: built once with mmdebstrap,
// keyed by the package list, shared between runs under a lock.

package machine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// rootfsPackages are installed on top of minbase. dbus-user-session and
// libpam-systemd give users a working user manager and session bus. The
// rest is rootless podman as Debian 12 ships it (4.3): the engine, its
// OCI runtime and monitor, the user-mode networks (slirp4netns, whose
// port forwarder is podman's rootlessport, and passt's pasta), newuidmap,
// fuse-overlayfs, the init catatonit, the CNI plugins and the shared
// configuration. No recommends: a test machine needs nothing more.
var rootfsPackages = []string{
	"systemd", "systemd-sysv", "dbus", "dbus-user-session",
	"libpam-systemd", "polkitd", "iproute2",
	"podman", "crun", "conmon", "slirp4netns", "passt", "uidmap",
	"fuse-overlayfs", "catatonit", "containernetworking-plugins",
	"golang-github-containers-common",
}

// testUsers are created in every machine; only lingerUser gets a user
// manager at boot, bob stays without one so tests can cover that case.
var testUsers = []struct {
	name string
	uid  int
}{{"alice", 1000}, {"bob", 1001}}

const lingerUser = "alice"

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
		return fmt.Errorf("machine: mmdebstrap failed: %w\n%s", err, tailLines(string(output), 30))
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
	if err := os.WriteFile(filepath.Join(lingerDir, lingerUser), nil, 0o644); err != nil {
		return err
	}
	// Debian's podman enables root's podman at boot (its API service and
	// socket, a restart of root's containers, auto-updates): root's, which
	// these machines never use, seconds of every boot on a loaded host, and
	// oneshots that every test switch (which starts the active targets)
	// would run again. The tests run podman rootless, as alice.
	for _, link := range []string{
		"default.target.wants/podman-auto-update.service", "default.target.wants/podman-restart.service",
		"default.target.wants/podman.service", "sockets.target.wants/podman.socket",
		"timers.target.wants/podman-auto-update.timer",
	} {
		if err := os.Remove(filepath.Join(m.root, "etc/systemd/system", link)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	// nspawn makes /dev/net/tun 0600 root's, where a distribution's udev
	// rule would make it 0666; rootless podman's slirp4netns opens it as
	// the user. systemd-tmpfiles-setup-dev applies this line at every
	// boot, after nspawn has made the node.
	tmpfiles := filepath.Join(m.root, "etc/tmpfiles.d")
	if err := os.MkdirAll(tmpfiles, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(tmpfiles, "portclaim-e2e-tun.conf"), []byte("z /dev/net/tun 0666 - - -\n"), 0o644)
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
