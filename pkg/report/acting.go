package report

import (
	"fmt"
	"slices"
	"strings"

	"github.com/portclaim/portclaim/pkg/conflict"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/plan"
	"github.com/portclaim/portclaim/pkg/protocol"
)

// ResolveDoc is resolve's JSON document.
type ResolveDoc struct {
	User      string                 `json:"user"`
	Manifest  Manifest               `json:"manifest"`
	DryRun    bool                   `json:"dryRun"`
	Yields    []protocol.YieldResult `json:"yields"`
	UserUnits []UserUnitDoc          `json:"userUnits"`
	Left      []Conflict             `json:"left"`
	Notes     []string               `json:"notes"`
	Errors    []string               `json:"errors"`
}

// ReleaseDoc is release's JSON document.
type ReleaseDoc struct {
	User     string                  `json:"user"`
	Manifest Manifest                `json:"manifest"`
	DryRun   bool                    `json:"dryRun"`
	Release  *protocol.ReleaseResult `json:"release"`
	// UserUnits, inside a switch: whether each user unit holds the ports
	// claimed for it.
	UserUnits []UserUnitDoc `json:"userUnits"`
	Notes     []string      `json:"notes"`
	Errors    []string      `json:"errors"`
}

// YieldQuestion is what resolve asks a person at a terminal before a
// yield: what it stops, what holds the ports now, for whom and which
// of their units.
func (c Check) YieldQuestion(y plan.Yield) string {
	return fmt.Sprintf("Stop %s (%s) and keep it down for %s, so that %s can have %s?",
		strings.Join(y.Units, " and "), c.holders(y), c.User, c.wanting(y), endpoint.PortList(y.Ports))
}

// holders says what holds the ports of y's service, or that it holds
// none now but takes them at boot.
func (c Check) holders(y plan.Yield) string {
	var out []string
	for _, it := range c.Items {
		f := it.Finding
		if f.SystemUnit == y.Units[len(y.Units)-1] {
			if f.Socket != nil {
				out = append(out, fmt.Sprintf("%s on %s", Who(f.Holder, c.NameOf), f.Socket.Endpoint))
			} else {
				out = append(out, "stopped, but enabled: it takes "+f.Want.PortProto()+" at boot")
			}
		}
	}
	return strings.Join(dedupe(out), "; ")
}

// wanting names the user units that want y's ports.
func (c Check) wanting(y plan.Yield) string {
	var out []string
	for _, it := range c.Items {
		if it.Finding.SystemUnit == y.Units[len(y.Units)-1] {
			out = append(out, it.Finding.UserUnit)
		}
	}
	return strings.Join(dedupe(out), " and ")
}

func dedupe(ss []string) []string {
	var out []string
	for _, s := range ss {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// PortsNow says, with nothing in the way, whose each claimed port is:
// free, or held by the user's own unit ("held by your ...").
func (c Check) PortsNow() string {
	var held, free []string
	for _, f := range c.Findings {
		if f.Kind == conflict.Self {
			held = append(held, fmt.Sprintf("%s held by %s %s", f.Want.PortProto(), c.Whose(), f.Unit))
		} else {
			free = append(free, f.Want.PortProto())
		}
	}
	switch {
	case len(held) == 0:
		return c.User + "'s ports are free"
	case len(free) == 0:
		return strings.Join(held, "; ")
	}
	return strings.Join(held, "; ") + "; free: " + strings.Join(free, ", ")
}
