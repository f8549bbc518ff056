package plan

import (
	"slices"

	"github.com/portclaim/portclaim/pkg/claim"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/manifest"
	"github.com/portclaim/portclaim/pkg/unitname"
)

// GiveBack lists the claimed units release asks to give back: every one
// with all, else those no service of the manifest names any more (by
// unit, not by service name: renaming a service in home.nix must not
// give its port away), with releases under way among them, and those
// asked for back before and deferred (the manifest may still name them:
// `release --all` while their port was still the user's). A unit
// stopped with another goes with it, and a socket with its service. (A
// release under way of a unit the manifest names again is resolve's to
// take back.) A record that cannot be read is asked for only with all:
// status reports it.
func GiveBack(entries []claim.Record, m manifest.Manifest, all bool) []string {
	var out []string
	for _, e := range entries {
		if e.Problem != "" && !all {
			continue
		}
		if all || !Declared(m, e) || e.Problem == "" && e.Claim.GiveBack != nil {
			if !slices.Contains(out, e.Unit) {
				out = append(out, e.Unit)
			}
		}
	}
	return out
}

// Declared reports whether a service of the manifest still claims e's
// unit: names it, the unit it was stopped with, or the service a socket
// activates.
func Declared(m manifest.Manifest, e claim.Record) bool {
	return slices.ContainsFunc(m.Services, func(svc manifest.Service) bool { return claimedBy(svc, e) })
}

func claimedBy(svc manifest.Service, e claim.Record) bool {
	return slices.ContainsFunc(svc.SystemUnits, func(u string) bool {
		return u == e.Unit || u == e.Claim.With || unitname.SocketFor(u) == e.Unit
	})
}

// UserUnit is one user unit and the ports claimed for it.
type UserUnit struct {
	Unit  string
	Ports []endpoint.Endpoint
}

// Claimed lists the user units whose ports a claim in entries keeps
// free (a record that can be read, not being released), the first user
// unit of each service that has one, with the service's ports: what
// release, in a switch, checks each holds once sd-switch has started
// them.
func Claimed(entries []claim.Record, m manifest.Manifest) []UserUnit {
	var out []UserUnit
	for _, svc := range m.Services {
		claimed := slices.ContainsFunc(entries, func(e claim.Record) bool {
			return e.Problem == "" && !e.Releasing && claimedBy(svc, e)
		})
		if claimed && len(svc.UserUnits) > 0 {
			out = append(out, UserUnit{Unit: svc.UserUnits[0], Ports: svc.Ports})
		}
	}
	return out
}

// Freed lists the user units whose ports the yields of p that freed
// them (done: by the last unit of each yield, the service) are for, in
// p's order, each with its ports: what resolve follows through to.
func Freed(p Plan, done map[string]bool) []UserUnit {
	var out []UserUnit
	at := map[string]int{}
	for _, it := range p.Items {
		f := it.Finding
		if it.Remedy.Who != ByResolve || !done[f.SystemUnit] || f.UserUnit == "" {
			continue
		}
		i, ok := at[f.UserUnit]
		if !ok {
			i = len(out)
			at[f.UserUnit] = i
			out = append(out, UserUnit{Unit: f.UserUnit})
		}
		if !slices.Contains(out[i].Ports, f.Want) {
			out[i].Ports = append(out[i].Ports, f.Want)
		}
	}
	return out
}
