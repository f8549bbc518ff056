package systemd

import (
	"testing"
)

func TestUserBus(t *testing.T) {
	cases := []struct {
		uid, euid int
		xdg       string
		want      string
		hello     bool
	}{
		{1000, 1000, "", "/run/user/1000/bus", true},
		{1000, 1000, "/tmp/xdg", "/tmp/xdg/bus", true},
		{1000, 0, "/run/user/0", "/run/user/1000/systemd/private", false},
		{0, 0, "", "/run/user/0/bus", true},
	}
	for _, c := range cases {
		got, hello := UserBus(c.uid, c.euid, c.xdg)
		if got != c.want || hello != c.hello {
			t.Errorf("UserBus(%d, %d, %q) = %q, %v; want %q, %v", c.uid, c.euid, c.xdg, got, hello, c.want, c.hello)
		}
	}
}

func TestPatternsEscapeBackslashes(t *testing.T) {
	got := patterns([]string{"ollama.service", `dev-disk-by\x2duuid.device`})
	if got[0] != "ollama.service" || got[1] != `dev-disk-by\\x2duuid.device` {
		t.Errorf("patterns = %q", got)
	}
}
