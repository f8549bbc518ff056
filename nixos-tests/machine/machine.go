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
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

const (
	// harnessVersion is part of the rootfs cache key; bump it whenever the
	// way the tarball is built changes so stale caches are not reused.
	harnessVersion = "1"
	suite          = "bookworm"

	readyTimeout = 3 * time.Minute
	stopTimeout  = 20 * time.Second

	// rootPATH is the whole environment of commands run as root inside the
	// machine (and of nsenter itself, which needs PATH to find setpriv/env).
	rootPATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

	// workParent holds the per-machine directories. Not /tmp: that may be a
	// tmpfs, and a few hundred MB per machine does not belong in RAM.
	workParent = "/var/tmp"
)

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

// Name returns the machine (and guest host) name.
func (m *Machine) Name() string { return m.name }

// Root returns the host path of the machine's rootfs.
func (m *Machine) Root() string { return m.root }
