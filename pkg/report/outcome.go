package report

import (
	"fmt"

	"github.com/portclaim/portclaim/pkg/claim"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/protocol"
)

// YieldLines says what one yield did, a line per unit, and what holds
// a port still (whose its ports are now, resolve says after: another
// user's socket is the only kind the broker waits out).
func YieldLines(user string, r protocol.YieldResult) []string {
	if r.Refused != nil {
		out := []string{"refused: " + r.Refused.Says}
		if r.Refused.NixOS != "" {
			out = append(out, "  let it yield, in configuration.nix: "+r.Refused.NixOS)
		}
		return out
	}
	var out []string
	for _, u := range r.Units {
		out = append(out, unitLine(user, u))
	}
	if !r.PortsFree && r.HeldBy != "" {
		out = append(out, "still held: "+r.HeldBy)
	}
	return out
}

// UserUnitDoc is what resolve did with a user unit whose ports it freed:
// started it (outside a switch), found it running, or left it, and why.
type UserUnitDoc struct {
	Unit string `json:"unit"`
	// Outcome: "started", "running" (it was), "holds" (it holds its
	// ports), "not-started" (Detail says why), "failed".
	Outcome string `json:"outcome"`
	// Ports are the unit's claimed ports, and Holds whether it holds
	// each when resolve ends.
	Ports  []endpoint.Endpoint `json:"ports"`
	Holds  bool                `json:"holds"`
	Detail string              `json:"detail,omitempty"`
}

func unitLine(user string, u protocol.UnitResult) string {
	with := ""
	if u.With != "" {
		with = fmt.Sprintf(" (stopped with %s, which it depends on)", u.With)
	}
	switch u.Outcome {
	case protocol.Stopped:
		return fmt.Sprintf("yielded  %s to %s%s: stopped and claimed", u.Unit, user, with)
	case protocol.KeptDown:
		return fmt.Sprintf("yielded  %s to %s%s: claimed; it was not running, and now stays down at boot", u.Unit, user, with)
	case protocol.Already:
		return fmt.Sprintf("yielded  %s to %s%s: claimed before", u.Unit, user, with)
	}
	verb := map[protocol.Outcome]string{
		protocol.StillStopping: "stopping", protocol.Failed: "failed", protocol.RolledBack: "undone",
		protocol.Restarted: "released", protocol.Removed: "released", protocol.Deferred: "deferred", protocol.Kept: "kept",
	}[u.Outcome]
	return fmt.Sprintf("%-8s %s%s: %s", verb, u.Unit, with, u.Detail)
}

// ReleaseLines says what a release did, a line per unit.
func ReleaseLines(user string, r protocol.ReleaseResult) []string {
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
func Left(units []protocol.UnitResult) int {
	n := 0
	for _, u := range units {
		switch u.Outcome {
		case protocol.Failed, protocol.StillStopping, protocol.Deferred, protocol.Kept:
			n++
		}
	}
	return n
}
