package report

import (
	"fmt"

	"github.com/portclaim/portclaim/pkg/claim"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/yield"
)

// YieldLines says what one yield did, a line per unit, and whether its
// ports are free now.
func YieldLines(user string, ports []endpoint.Endpoint, r yield.YieldResult) []string {
	if r.Refused != nil {
		line := "refused: " + r.Refused.Says
		if r.Refused.NixOS != "" {
			line += " — configuration.nix: " + r.Refused.NixOS
		}
		return []string{line}
	}
	var out []string
	for _, u := range r.Units {
		out = append(out, unitLine(user, u))
	}
	switch {
	case r.PortsFree:
		out = append(out, fmt.Sprintf("%s free for %s", endpoint.PortList(ports), user))
	case r.HeldBy != "":
		out = append(out, "still held: "+r.HeldBy)
	}
	return out
}

func unitLine(user string, u yield.UnitResult) string {
	with := ""
	if u.With != "" {
		with = fmt.Sprintf(" (stopped with %s, which it depends on)", u.With)
	}
	switch u.Outcome {
	case yield.Stopped:
		return fmt.Sprintf("yielded  %s to %s%s: stopped and claimed", u.Unit, user, with)
	case yield.KeptDown:
		return fmt.Sprintf("yielded  %s to %s%s: claimed; it was not running, and now stays down at boot", u.Unit, user, with)
	case yield.Already:
		return fmt.Sprintf("yielded  %s to %s%s: claimed before", u.Unit, user, with)
	}
	verb := map[yield.Outcome]string{
		yield.StillStopping: "stopping", yield.Failed: "failed", yield.RolledBack: "undone",
		yield.Restarted: "released", yield.Removed: "released", yield.Deferred: "deferred", yield.Kept: "kept",
	}[u.Outcome]
	return fmt.Sprintf("%-8s %s%s: %s", verb, u.Unit, with, u.Detail)
}

// ReleaseLines says what a release did, a line per unit.
func ReleaseLines(user string, r yield.ReleaseResult) []string {
	var out []string
	for _, u := range r.Units {
		out = append(out, unitLine(user, u))
	}
	return out
}

// MethodText says what keeps a claimed unit down.
func MethodText(m string) string {
	switch m {
	case claim.ByCondition:
		return "its ConditionPathExists, also across reboots"
	case claim.ByTransientMask:
		return "a mask in /run/systemd/transient, until release or reboot"
	}
	return "nothing at boot"
}

// Left counts the units a result leaves not done.
func Left(units []yield.UnitResult) int {
	n := 0
	for _, u := range units {
		switch u.Outcome {
		case yield.Failed, yield.StillStopping, yield.Deferred, yield.Kept:
			n++
		}
	}
	return n
}
