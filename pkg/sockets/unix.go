package sockets

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// soAcceptCon is __SO_ACCEPTCON, the flag /proc/net/unix shows on a
// listening socket.
const soAcceptCon = 0x10000

// UnixListening reports whether a socket listens at path, as
// procRoot/net/unix lists this network namespace's Unix sockets. A
// socket file alone says nothing: systemd leaves portclaim.socket's file
// in place when the unit stops, and a connection to it is refused. (The
// table names a socket by the path it was bound to; one bound to the same
// path in another mount namespace sharing this network namespace would
// count too.) Reading the table starts nothing: a connection would start
// the broker.
func UnixListening(procRoot, path string) (bool, error) {
	f, err := os.Open(filepath.Join(procRoot, "net", "unix"))
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		if listensAt(sc.Text(), path) {
			return true, nil
		}
	}
	return false, sc.Err()
}

// listensAt reads one line of /proc/net/unix: "Num RefCount Protocol
// Flags Type St Inode Path".
func listensAt(line, path string) bool {
	fields := strings.Fields(line)
	if len(fields) < 8 || strings.Join(fields[7:], " ") != path {
		return false
	}
	flags, err := strconv.ParseUint(fields[3], 16, 32)
	return err == nil && flags&soAcceptCon != 0
}
