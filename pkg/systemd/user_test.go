package systemd

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPeerIsWhatTheKernelSays: root talks to a user manager only when the
// process at the other end of the connection runs as that user, whatever
// the socket file says (a link or a socket swapped in after root looked).
func TestPeerIsWhatTheKernelSays(t *testing.T) {
	path := filepath.Join(t.TempDir(), "private")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	me := os.Geteuid()
	if err := peerIs(c.(*net.UnixConn), me); err != nil {
		t.Errorf("a peer of uid %d is not uid %d: %v", me, me, err)
	}
	if err := peerIs(c.(*net.UnixConn), me+4242); err == nil || !strings.Contains(err.Error(), "runs as uid") {
		t.Errorf("a peer of uid %d passed as uid %d: %v", me, me+4242, err)
	}
}
