package broker

import (
	"fmt"
	"net"

	"github.com/coreos/go-systemd/v22/activation"
)

// Activated returns the Unix stream socket systemd passed to this process
// (sd_listen_fds(3)), through go-systemd's activation package, which also
// clears LISTEN_* so that nothing started from here inherits them. The
// package brings crypto/tls into the binary: measured at about 0.2 ms
// more a start (median of 1,500 interleaved runs of `portclaim
// --version`, 3.54 → 3.77 ms), within a switch's noise.
func Activated() (*net.UnixListener, error) {
	listeners, err := activation.Listeners()
	if err != nil {
		return nil, fmt.Errorf("reading the sockets systemd passed: %w", err)
	}
	if len(listeners) == 0 {
		return nil, fmt.Errorf("no socket from systemd (LISTEN_PID/LISTEN_FDS are not for this process)")
	}
	var found *net.UnixListener
	for _, l := range listeners {
		if ul, ok := l.(*net.UnixListener); ok && found == nil {
			found = ul
			continue
		}
		if l != nil {
			l.Close()
		}
	}
	if found == nil {
		return nil, fmt.Errorf("systemd passed no Unix stream socket")
	}
	return found, nil
}
