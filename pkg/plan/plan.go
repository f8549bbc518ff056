// Package plan turns what check found into what resolve and release will
// do, and into the exact fix wherever they may not act. It is pure: the
// executor (package act) does only what a plan lists.
package plan

import (
	"fmt"
	"slices"
	"strings"

	"github.com/portclaim/portclaim/pkg/claims"
	"github.com/portclaim/portclaim/pkg/conflict"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/manifest"
	"github.com/portclaim/portclaim/pkg/policy"
	"github.com/portclaim/portclaim/pkg/unitname"
)

// Action is what a step does.
type Action string

const (
	// Yield: write the claims, stop the units, wait until the ports are free.
	Yield Action = "yield"
	// KeepDown: the units are stopped but would start at boot: write the
	// claims only.
	KeepDown Action = "keep-down"
	// Refuse: portclaim may not act; Fix says who can and how.
	Refuse Action = "refuse"
	// Report: a conflict portclaim does not act on (strategy, or a holder
	// the manifest does not name); Fix says what to change.
	Report Action = "report"
)

// Step is one thing resolve does, for one system unit (with its .socket).
type Step struct {
	Action  Action
	Service string
	// Units are the system units that yield together, .socket first so
	// it cannot start the service again while it stops.
	Units []string
	Ports []endpoint.Endpoint // every port the service claims
	// Method keeps the units down (claims.ByCondition,
	// claims.ByTransientMask); "" when nothing will (the units lack the
	// condition and we are not root): they come back at boot.
	Method string
	// Existing lists units that already have this user's claim: a run
	// after a crash converges instead of claiming again.
	Existing []string
	Findings []conflict.Finding
	Fix      string
}

// Input is what Resolve plans from.
type Input struct {
	Manifest manifest.Manifest
	Findings []conflict.Finding
	User     string
	Root     bool
	Policy   *policy.Policy // nil when none is installed or it is untrusted
	NoPolicy string         // why Policy is nil
	// ClaimsDir is the policy's, or the default when there is none.
	ClaimsDir string
	System    map[string]host.Unit
	// Conditions of the units in play (Resolvable and Latent ones).
	Conditions map[string][]host.Condition
	Claims     map[string]claims.Claim // this user's, by unit
}

// Resolve plans the resolution of every conflict in in.Findings.
func Resolve(in Input) []Step {
	var steps []Step
	byUnit := map[string]int{} // system unit -> index in steps
	for _, f := range in.Findings {
		if !f.Kind.Conflict() {
			continue
		}
		actionable := f.Kind == conflict.Resolvable || f.Kind == conflict.Latent
		if !actionable || in.Manifest.Strategy != manifest.DisableSystem {
			steps = append(steps, report(in, f))
			continue
		}
		if i, ok := byUnit[f.SystemUnit]; ok {
			steps[i].Findings = append(steps[i].Findings, f)
			if f.Kind == conflict.Resolvable && steps[i].Action == KeepDown {
				steps[i].Action = Yield
			}
			continue
		}
		byUnit[f.SystemUnit] = len(steps)
		steps = append(steps, yieldStep(in, f))
	}
	return steps
}

func yieldStep(in Input, f conflict.Finding) Step {
	unit := f.SystemUnit
	st := Step{Action: Yield, Service: f.Service, Units: group(in, unit), Findings: []conflict.Finding{f}}
	if f.Kind == conflict.Latent {
		st.Action = KeepDown
	}
	for _, svc := range in.Manifest.Services {
		if svc.Name == f.Service {
			st.Ports = svc.Ports
		}
	}
	for _, u := range st.Units {
		if _, ok := in.Claims[u]; ok {
			st.Existing = append(st.Existing, u)
		}
	}
	if !in.Root {
		if in.Policy == nil {
			st.Action = Refuse
			st.Fix = fmt.Sprintf("%s; nothing was changed. %s", in.NoPolicy, grantFix(st.Units, in.User, unit))
			return st
		}
		var missing []string
		for _, u := range st.Units {
			if !in.Policy.Allows(in.User, u) {
				missing = append(missing, u)
			}
		}
		if len(missing) > 0 {
			st.Action = Refuse
			st.Fix = fmt.Sprintf("the system policy %s does not let %s yield to %s; nothing was changed. %s",
				in.Policy.Path, strings.Join(missing, " and "), in.User, grantFix(missing, in.User, unit))
			return st
		}
	}
	st.Method = claims.ByCondition
	for _, u := range st.Units {
		path := claims.Dir(in.ClaimsDir, in.User) + "/" + u
		if host.KeptDownBy(in.Conditions[u], path) {
			continue
		}
		if in.Root {
			st.Method = claims.ByTransientMask
		} else {
			st.Method = ""
			st.Fix = fmt.Sprintf("%s has no ConditionPathExists=!%s, so it will start again at boot; the NixOS module adds it for every unit in services.portclaim.yield", u, path)
		}
	}
	return st
}

// group is the unit with the socket that activates it, socket first.
func group(in Input, unit string) []string {
	if u, ok := in.System[unit]; ok && len(u.TriggeredBy) > 0 {
		return append(slices.Clone(u.TriggeredBy), unit)
	}
	return []string{unit}
}

// grantFix says how to let user make units yield: the NixOS option, and
// the permanent alternative.
func grantFix(units []string, user, main string) string {
	var opts []string
	for _, u := range units {
		opts = append(opts, fmt.Sprintf("services.portclaim.yield.%q.users = [ %q ];", u, user))
	}
	return fmt.Sprintf("To let portclaim do it, add to configuration.nix: %s Or turn the system service off for good: services.%s.enable = false; Or, as root, once (until the next boot): systemctl stop %s",
		strings.Join(opts, " "), unitname.Base(main), strings.Join(units, " "))
}

func report(in Input, f conflict.Finding) Step {
	st := Step{Action: Report, Service: f.Service, Findings: []conflict.Finding{f}, Fix: f.Next}
	if f.SystemUnit != "" {
		st.Units = []string{f.SystemUnit}
	}
	switch {
	case in.Manifest.Strategy == manifest.DisableUser && (f.Kind == conflict.Resolvable || f.Kind == conflict.Latent):
		st.Fix = fmt.Sprintf("strategy disable-user: the system service keeps the port; turn your user service off in home.nix: %s", userOff(f))
	case in.Manifest.Strategy == manifest.Report && (f.Kind == conflict.Resolvable || f.Kind == conflict.Latent):
		st.Fix = "strategy report: nothing is changed. " + f.Next
	}
	return st
}

// userOff names the home.nix change that turns the user unit off.
func userOff(f conflict.Finding) string {
	if name, ok := containerOf(f.UserUnit); ok {
		return fmt.Sprintf("remove services.podman.containers.%s (or stop declaring %s in services.portclaim.services.%s)", name, f.UserUnit, f.Service)
	}
	return fmt.Sprintf("stop declaring %s (services.portclaim.services.%s)", f.UserUnit, f.Service)
}

// containerOf maps home-manager's podman unit names back to the
// container: services.podman.containers.<name> runs podman-<name>.service.
func containerOf(userUnit string) (string, bool) {
	base, ok := strings.CutSuffix(userUnit, ".service")
	if !ok {
		return "", false
	}
	return strings.CutPrefix(base, "podman-")
}

// ReleaseStep gives one claimed unit back.
type ReleaseStep struct {
	Claim claims.Claim
	// Start: the unit was active before the claim, so it is started
	// again (after its claim is gone).
	Start bool
	// Deferred says why the claim stays for now ("" to release).
	Deferred string
}

// Release plans which claims to give back: those whose unit no service of
// the manifest names any more (all of them with all). A claim whose ports
// are still held is deferred: starting the unit now would only fail, or
// take the port from a user unit. A claimed unit that runs anyway (its
// claim kept nothing down) has its claim removed, and is not started.
// Steps come socket first, so a service starts after the socket it needs.
func Release(cs []claims.Claim, m manifest.Manifest, all bool, now []host.Socket, running map[string]bool) []ReleaseStep {
	var out []ReleaseStep
	for _, c := range cs {
		if !all && declared(m, c) {
			continue
		}
		if running[c.Unit] {
			out = append(out, ReleaseStep{Claim: c})
			continue
		}
		st := ReleaseStep{Claim: c, Start: c.Prior.WasActive()}
		for _, want := range c.Endpoints() {
			for _, s := range now {
				if endpoint.Overlap(want, s.Endpoint) {
					st.Deferred = fmt.Sprintf("%s is still held at %s (uid %d); released on a later run once it is free", portName(want), s.Endpoint, s.UID)
					break
				}
			}
			if st.Deferred != "" {
				break
			}
		}
		out = append(out, st)
	}
	slices.SortStableFunc(out, func(a, b ReleaseStep) int { return strings.Compare(releaseKey(a.Claim.Unit), releaseKey(b.Claim.Unit)) })
	return out
}

// releaseKey orders foo.socket before foo.service.
func releaseKey(unit string) string {
	if base, ok := strings.CutSuffix(unit, ".socket"); ok {
		return base + ".0"
	}
	return unitname.Base(unit) + ".1"
}

// declared reports whether any service still names the claimed unit (by
// unit, not by service name: renaming a service in home.nix must not give
// its port away), or the service it activates.
func declared(m manifest.Manifest, c claims.Claim) bool {
	for _, svc := range m.Services {
		if slices.Contains(svc.SystemUnits, c.Unit) {
			return true
		}
		// A .socket claimed along with one of the service's units.
		for _, u := range svc.SystemUnits {
			if strings.TrimSuffix(u, ".service")+".socket" == c.Unit {
				return true
			}
		}
	}
	return false
}

func portName(e endpoint.Endpoint) string { return fmt.Sprintf("%d/%s", e.Port, e.Proto) }

// SuggestPort finds the free port nearest to want.Port on want's address
// (alternating above and below, staying at or above 1024 and away from
// every other claimed port), or 0 when none is within 100.
func SuggestPort(want endpoint.Endpoint, now []host.Socket, m manifest.Manifest) uint16 {
	free := func(p int) bool {
		if p < 1024 || p > 65535 {
			return false
		}
		cand := want
		cand.Port = uint16(p)
		for _, s := range now {
			if endpoint.Overlap(cand, s.Endpoint) {
				return false
			}
		}
		for _, svc := range m.Services {
			for _, e := range svc.Ports {
				if endpoint.Overlap(cand, e) {
					return false
				}
			}
		}
		return true
	}
	for d := 1; d <= 100; d++ { // inspect reads the sockets 100 ports around each claim
		for _, p := range []int{int(want.Port) + d, int(want.Port) - d} {
			if free(p) {
				return uint16(p)
			}
		}
	}
	return 0
}

// MoveLine is the home.nix line that moves the user unit to port: for a
// home-manager podman container, its ports entry (host:container).
func MoveLine(f conflict.Finding, port uint16) string {
	if name, ok := containerOf(f.UserUnit); ok {
		host := ""
		if !f.Want.All() && !f.Want.Addr.IsUnspecified() {
			host = f.Want.Addr.String() + ":"
			if f.Want.Addr.Is6() {
				host = "[" + f.Want.Addr.String() + "]:"
			}
		}
		proto := ""
		if f.Want.Proto == endpoint.UDP {
			proto = "/udp"
		}
		return fmt.Sprintf(`services.podman.containers.%s.ports = [ "%s%d:%d%s" ];`, name, host, port, f.Want.Port, proto)
	}
	return fmt.Sprintf("move %s to port %d (and services.portclaim.services.%s.ports)", f.UserUnit, port, f.Service)
}
