package host

import "testing"

func TestStartsAtBoot(t *testing.T) {
	if !(Unit{UnitFileState: "enabled"}).StartsAtBoot() || (Unit{UnitFileState: "static"}).StartsAtBoot() {
		t.Error("StartsAtBoot wrong")
	}
}

func TestKeptDownBy(t *testing.T) {
	conds := []Condition{
		{Type: "ConditionPathExists", Negate: true, Param: "/var/lib/portclaim/claims/bob/q.service"},
		{Type: "ConditionPathExists", Negate: true, Param: "/var/lib/portclaim/claims/alice/q.service"},
		{Type: "ConditionPathExists", Negate: false, Param: "/etc/x"},
		{Type: "ConditionPathExists", Negate: true, Trigger: true, Param: "/var/lib/portclaim/claims/carol/q.service"},
	}
	if !KeptDownBy(conds, "/var/lib/portclaim/claims/alice/q.service") {
		t.Error("alice's claim path not recognised")
	}
	if KeptDownBy(conds, "/etc/x") || KeptDownBy(conds, "/var/lib/portclaim/claims/carol/q.service") {
		t.Error("a positive or triggering condition counted as keeping the unit down")
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"ollama":                 "ollama",
		"naïve ✓":                "naïve ✓",
		"\x1b]0;pwned\a":         "?]0;pwned?",
		"a\x1b[2Jb":              "a?[2Jb",
		"line\nbreak\ttab\x7f":   "line?break?tab?",
		"c1 \u009b31m":           "c1 ?31m",
		"bad utf8 \xff\xfe done": "bad utf8 ?? done",
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}
