package main

import (
	"bytes"
	"testing"
)

// TestColoursAreHomeManagers: errors bold red, warnings yellow, notes
// bold cyan (home-manager's setupColors), only on a terminal that shows
// colours, and not when NO_COLOR is set at all, even empty.
func TestColoursAreHomeManagers(t *testing.T) {
	say := func(tty bool, env map[string]string) string {
		var b bytes.Buffer
		a := &app{stderr: &b, stderrTTY: tty, getenv: func(k string) string { return env[k] },
			lookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
		a.errorf("e", "")
		a.warnf("w")
		a.notef("n")
		return b.String()
	}
	xterm := map[string]string{"TERM": "xterm-256color"}
	if got, want := say(true, xterm), "\033[1;31mportclaim: error: \033[0me\n\033[33mportclaim: warning: \033[0mw\n\033[1;36mportclaim: note: \033[0mn\n"; got != want {
		t.Errorf("at a terminal: %q, want %q", got, want)
	}
	plain := "portclaim: error: e\nportclaim: warning: w\nportclaim: note: n\n"
	for name, c := range map[string]struct {
		tty bool
		env map[string]string
	}{
		"a pipe":         {false, xterm},
		"NO_COLOR empty": {true, map[string]string{"TERM": "xterm", "NO_COLOR": ""}},
		"NO_COLOR=1":     {true, map[string]string{"TERM": "xterm", "NO_COLOR": "1"}},
		"TERM=dumb":      {true, map[string]string{"TERM": "dumb"}},
		"no TERM":        {true, map[string]string{}},
	} {
		if got := say(c.tty, c.env); got != plain {
			t.Errorf("%s: %q, want no colours", name, got)
		}
	}
}
