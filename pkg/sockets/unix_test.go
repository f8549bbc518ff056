package sockets

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestUnixListening(t *testing.T) {
	dir := t.TempDir()
	table := "Num       RefCount Protocol Flags    Type St Inode Path\n" +
		"0000000000000000: 00000002 00000000 00010000 0001 01 21 /run/portclaim/broker.sock\n" +
		"0000000000000000: 00000003 00000000 00000000 0001 03 22 /run/other.sock\n" +
		"0000000000000000: 00000002 00000000 00010000 0001 01 23 /run/with space.sock\n"
	os.MkdirAll(filepath.Join(dir, "net"), 0o755)
	os.WriteFile(filepath.Join(dir, "net", "unix"), []byte(table), 0o644)
	for path, want := range map[string]bool{"/run/portclaim/broker.sock": true, "/run/other.sock": false, "/run/with space.sock": true, "/run/none.sock": false} {
		if got, err := UnixListening(dir, path); err != nil || got != want {
			t.Errorf("%s: %v %v, want %v", path, got, err, want)
		}
	}
	// This process's own table: a listening socket is there, and is not
	// once it is closed (its file stays, as systemd's does).
	path := filepath.Join(t.TempDir(), "l.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if ok, err := UnixListening("/proc", path); err != nil || !ok {
		t.Errorf("listening: %v %v", ok, err)
	}
	ln.Close()
	if ok, err := UnixListening("/proc", path); err != nil || ok {
		t.Errorf("closed: %v %v", ok, err)
	}
}
