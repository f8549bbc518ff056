package broker

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
)

// listenFDsStart is SD_LISTEN_FDS_START: systemd passes the first socket
// as file descriptor 3.
const listenFDsStart = 3

// Activated returns the Unix socket systemd passed to this process
// (sd_listen_fds(3): LISTEN_PID is ours, LISTEN_FDS counts them from fd
// 3), and clears those variables so that nothing started from here
// inherits them. It is a few lines of the protocol rather than
// go-systemd's activation package, which brings crypto/tls into every
// run of portclaim: a millisecond more at each start, a switch's too.
func Activated() (*net.UnixListener, error) {
	defer func() {
		for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
			_ = os.Unsetenv(v) // fails only on an invalid name
		}
	}()
	pid, err := strconv.Atoi(os.Getenv("LISTEN_PID"))
	if err != nil || pid != os.Getpid() {
		return nil, fmt.Errorf("no socket from systemd (LISTEN_PID is not this process)")
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n < 1 {
		return nil, fmt.Errorf("no socket from systemd (LISTEN_FDS=%q)", os.Getenv("LISTEN_FDS"))
	}
	for fd := listenFDsStart; fd < listenFDsStart+n; fd++ {
		syscall.CloseOnExec(fd)
		f := os.NewFile(uintptr(fd), "portclaim.socket")
		l, err := net.FileListener(f)
		f.Close() // FileListener holds its own copy
		if err != nil {
			continue
		}
		if ul, ok := l.(*net.UnixListener); ok {
			return ul, nil
		}
		l.Close()
	}
	return nil, fmt.Errorf("systemd passed no Unix stream socket")
}
