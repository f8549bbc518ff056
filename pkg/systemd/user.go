// The user managers: where each listens, and connecting to one as the
// user or as root.
package systemd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

// UserBus returns where the user manager of uid listens: its session bus
// ($XDG_RUNTIME_DIR/bus, the default for the user itself, found even
// without DBUS_SESSION_BUS_ADDRESS), or for root asking about another user,
// that manager's private socket (systemd lets root in, dbus-daemon does
// not). It returns the socket's path, and whether it needs the bus Hello.
func UserBus(uid int, euid int, runtimeDir string) (path string, hello bool) {
	if runtimeDir == "" || euid != uid {
		runtimeDir = "/run/user/" + strconv.Itoa(uid)
	}
	if euid == 0 && uid != 0 {
		return filepath.Join(runtimeDir, "systemd/private"), false
	}
	return filepath.Join(runtimeDir, "bus"), true
}

// UserBusPath is where this process finds the user manager of uid. Root
// takes no XDG_RUNTIME_DIR from its environment (`sudo -E` would hand it
// a user's), so it always looks in /run/user/<uid>.
func UserBusPath(uid int) string {
	runtimeDir := os.Getenv("XDG_RUNTIME_DIR")
	if os.Geteuid() == 0 {
		runtimeDir = ""
	}
	path, _ := UserBus(uid, os.Geteuid(), runtimeDir)
	return path
}

// User connects to the user manager of uid. The connection is closed when
// ctx ends.
func User(ctx context.Context, uid int) (*Manager, error) {
	path := UserBusPath(uid)
	_, hello := UserBus(uid, os.Geteuid(), "")
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("the user manager of uid %d is not running (%s does not exist)", uid, path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); os.Geteuid() == 0 && (fi.Mode()&os.ModeSocket == 0 || !ok || st.Uid != uint32(uid)) {
		// The user's runtime directory is theirs: root connects only to
		// a socket of theirs there, not where a link would lead it.
		return nil, fmt.Errorf("%s is not uid %d's socket; not connecting as root", path, uid)
	}
	c, err := sd.NewConnection(once(func() (*dbus.Conn, error) {
		sock, err := new(net.Dialer).DialContext(ctx, "unix", path)
		if err != nil {
			return nil, err
		}
		// The check above and the dial are two looks at a directory the
		// user controls: a link swapped in between would lead root to
		// another manager (the system's). The peer the kernel reports
		// is what counts.
		if os.Geteuid() == 0 {
			if err := peerIs(sock.(*net.UnixConn), uid); err != nil {
				sock.Close()
				return nil, fmt.Errorf("%s: %w; not talking to it as root", path, err)
			}
		}
		conn, err := dbus.NewConn(sock, dbus.WithContext(ctx))
		if err != nil {
			sock.Close()
			return nil, err
		}
		return authHello(conn, hello)
	}))
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, fs.ErrNotExist) {
			// The runtime directory outlives its manager for a moment.
			return nil, fmt.Errorf("the user manager of uid %d is not running (nothing answers at %s)", uid, path)
		}
		return nil, fmt.Errorf("connecting to the user manager of uid %d at %s: %w", uid, path, err)
	}
	return &Manager{conn: c}, nil
}

// peerIs checks that the process at the other end of c runs as uid
// (SO_PEERCRED, as the kernel saw it when it connected).
func peerIs(c *net.UnixConn, uid int) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if credErr != nil {
		return credErr
	}
	if int(cred.Uid) != uid {
		return fmt.Errorf("the manager there runs as uid %d, not %d", cred.Uid, uid)
	}
	return nil
}
