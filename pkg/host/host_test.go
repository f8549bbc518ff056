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
