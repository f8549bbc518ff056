// The remedies: for each kind of conflict, who can fix it and how, in
// the words of whoever reads it (you, or root for alice).
package plan

import (
	"fmt"
	"strings"

	"github.com/portclaim/portclaim/pkg/conflict"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/manifest"
)

// reader is how a remedy names the user it is for: "you" and "your" when
// they read it themselves, their name when root does.
type reader struct{ you, your string }

func readerOf(in Input) reader {
	if in.Root {
		return reader{in.User, in.User + "'s"}
	}
	return reader{"you", "your"}
}

// asRoot is a command root runs: with sudo for a user who reads it.
func asRoot(in Input, cmd string) string {
	if in.Root {
		return cmd
	}
	return "sudo " + cmd
}

// rootDoes is what to do as root: said so to a user, not to root.
func rootDoes(in Input, do string) string {
	if in.Root {
		return do
	}
	return do + ", as root"
}

func remedy(in Input, f conflict.Finding) Remedy {
	port := f.Want.PortProto()
	rd := readerOf(in)
	switch f.Kind {
	case conflict.Resolvable, conflict.Latent:
		switch in.Manifest.Strategy {
		case manifest.DisableUser:
			return userOff(in, f)
		case manifest.Report:
			return reportOnly(in, f)
		}
		return yieldRemedy(in, f)
	case conflict.SystemOther:
		r := Remedy{Who: ByRoot, Says: fmt.Sprintf("%s does not name %s, so portclaim leaves it alone", f.Service, f.Unit),
			Ways: []Way{{Do: rootDoes(in, "stop it until the next boot"), Lines: []string{asRoot(in, "systemctl stop "+f.Unit)}}}}
		if off := nixosOff(f.Unit); off != "" {
			r.Ways = append(r.Ways, Way{Do: "or turn it off for good", In: InNixOS, Lines: []string{off}})
		}
		return r
	case conflict.OtherUser:
		other := strings.TrimPrefix(f.Manager, "user ")
		return Remedy{Who: ByOtherUser, Says: fmt.Sprintf("it is %s's %s: ask %s to stop it", other, f.Unit, other)}
	case conflict.UserOther:
		cmd := "systemctl --user stop " + f.Unit
		if in.Root {
			cmd = fmt.Sprintf("systemctl --user -M %s@ stop %s", in.User, f.Unit)
		}
		return Remedy{Who: ByYou, Says: fmt.Sprintf("it is %s own unit", rd.your),
			Ways: []Way{{Do: "stop it", Lines: []string{cmd}}}}
	case conflict.NoUnit:
		r := Remedy{Who: ByRoot, Says: fmt.Sprintf("pid %d (%s) holds %s outside any service unit", f.Holder.PID, f.Holder.Command, port)}
		if f.Holder.PID > 0 {
			r.Ways = []Way{{Do: rootDoes(in, "stop that process"), Lines: []string{asRoot(in, fmt.Sprintf("kill %d", f.Holder.PID))}}}
		}
		return r
	default: // Unknown
		return Remedy{Who: ByRoot, Says: fmt.Sprintf("what %s may read does not say which process of uid %d holds %s", rd.you, f.Holder.UID, port),
			Ways: []Way{{Do: rootDoes(in, "name it"), Lines: []string{asRoot(in, "portclaim who "+port)}}}}
	}
}

// yieldRemedy is the remedy for a named system unit in the way: resolve
// makes it yield when it may, now; else the administrator or root can.
func yieldRemedy(in Input, f conflict.Finding) Remedy {
	group := Group(in.System, f.SystemUnit)
	what := strings.Join(group, " and ")
	rootCmd := asRoot(in, "portclaim resolve --user "+in.User)
	if in.Root {
		says := fmt.Sprintf("root may make %s yield to %s", what, in.User)
		if f.Kind == conflict.Latent {
			says = atBoot(in, f, what) + "; root may keep it down for " + in.User
		}
		if in.Declined {
			return Remedy{Who: ByRoot, Says: says + ", when asked: there was no terminal to ask on",
				Ways: []Way{{Do: "act without asking", Lines: []string{rootCmd + " --yes"}}}}
		}
		return Remedy{Who: ByResolve, Says: says, Ways: []Way{{Lines: []string{rootCmd}}}}
	}
	missing := notAllowed(in, group)
	switch {
	case len(missing) == 0 && in.Broker == host.BrokerListening:
		says := fmt.Sprintf("the system policy lets %s yield to you", what)
		if f.Kind == conflict.Latent {
			says = atBoot(in, f, what) + "; the system policy lets it yield to you"
		}
		if in.Declined {
			return Remedy{Who: ByYou, Says: says + "; autoResolve is off and there was no terminal to ask on",
				Ways: []Way{{Do: "act without asking", Lines: []string{"portclaim resolve --yes"}},
					{Do: "or let portclaim act on every switch", In: InHome, Lines: []string{"services.portclaim.autoResolve = true;"}}}}
		}
		return Remedy{Who: ByResolve, Says: says, Ways: []Way{{Lines: []string{"portclaim resolve"}}}}
	case len(missing) == 0 && in.Broker == host.BrokerStopped:
		return Remedy{Who: ByAdmin,
			Says: fmt.Sprintf("the system policy lets %s yield to you, but nothing listens at %s: portclaim.socket is stopped", what, in.BrokerSocket),
			Ways: []Way{{Do: "see why", Lines: []string{"systemctl status portclaim.socket"}},
				{Do: "and start it again, as root", Lines: []string{"sudo systemctl start portclaim.socket"}},
				{Do: "or as root, now", Lines: []string{rootCmd}}}}
	case len(missing) == 0:
		return Remedy{Who: ByAdmin,
			Says: fmt.Sprintf("the system policy lets %s yield to you, but portclaim's broker is not there (no %s)", what, in.BrokerSocket),
			Ways: []Way{{Do: "enable portclaim's NixOS module", In: InNixOS, Lines: []string{"services.portclaim.enable = true;"}},
				{Do: "or as root, now", Lines: []string{rootCmd}}}}
	}
	r := Remedy{Who: ByAdmin}
	r.Says, r.Ways = letYield(in, f, missing)
	r.Ways = append(r.Ways, Way{Do: "or as root, now", Lines: []string{rootCmd}})
	return r
}

// reportOnly is strategy report's remedy: portclaim changes nothing, and
// resolve asks for no yield (as root neither), so the way out is the
// user's strategy; where the system side does not let the unit yield
// yet, the administrator's lines come with it.
func reportOnly(in Input, f conflict.Finding) Remedy {
	group := Group(in.System, f.SystemUnit)
	what := strings.Join(group, " and ")
	r := Remedy{Who: ByYou, Says: "strategy report: portclaim changes nothing",
		Ways: []Way{{Do: "let `portclaim resolve` make " + what + " yield", In: InHome, Lines: []string{`services.portclaim.strategy = "disable-system";`}}}}
	if in.Root {
		return r // root's authority needs no policy
	}
	if missing := notAllowed(in, group); len(missing) > 0 {
		_, ways := letYield(in, f, missing)
		ways[0].Do = "and " + ways[0].Do
		r.Ways = append(r.Ways, ways...)
	} else if in.Broker == host.BrokerMissing {
		r.Ways = append(r.Ways, Way{Do: "and enable portclaim's NixOS module", In: InNixOS, Lines: []string{"services.portclaim.enable = true;"}})
	}
	return r
}

// atBoot says why a stopped unit is in the way.
func atBoot(in Input, f conflict.Finding, what string) string {
	return fmt.Sprintf("%s is stopped but enabled, so it takes %s at boot, before %s user units start", what, f.Want.PortProto(), readerOf(in).your)
}

// notAllowed lists the units of group the policy does not let yield to
// the user.
func notAllowed(in Input, group []string) []string {
	var missing []string
	for _, u := range group {
		if in.Policy == nil || !in.Policy.Allows(in.User, u) {
			missing = append(missing, u)
		}
	}
	return missing
}

// letYield is the administrator's part where the policy does not let
// missing yield: why, and the configuration.nix ways.
func letYield(in Input, f conflict.Finding, missing []string) (string, []Way) {
	var says string
	yield := Way{Do: "let it yield", In: InNixOS}
	if in.Policy == nil {
		says = in.PolicyProblem
		yield.Do = "enable portclaim and let it yield"
		yield.Lines = []string{"services.portclaim.enable = true;"}
	} else {
		says = fmt.Sprintf("the system policy does not let %s yield to you", strings.Join(missing, " and "))
	}
	if f.Kind == conflict.Latent {
		says = atBoot(in, f, strings.Join(Group(in.System, f.SystemUnit), " and ")) + "; " + says
	}
	yield.Lines = append(yield.Lines, in.Policy.YieldLine(in.User, missing...))
	ways := []Way{yield}
	if off := nixosOff(f.SystemUnit); off != "" {
		ways = append(ways, Way{Do: "or turn the system service off for good", In: InNixOS, Lines: []string{off}})
	}
	return says, ways
}

// nixosOff is the configuration.nix line that turns a system unit off,
// only where the known-services table knows the NixOS module that runs
// it: a name guessed from the unit could name an option that does not
// exist.
func nixosOff(unit string) string {
	k, ok := manifest.KnownFor(unit)
	if !ok || k.NixOSModule == "" {
		return ""
	}
	return k.NixOSModule + ".enable = false;"
}

// userOff is strategy disable-user's remedy: the system service keeps the
// port; the user's own service goes, where home.nix declares it. A unit
// a generator writes (podman's quadlet does, from home.nix) cannot be
// disabled with systemctl: systemd refuses; only home.nix turns it off.
func userOff(in Input, f conflict.Finding) Remedy {
	svc := serviceOf(in.Manifest, f.Service)
	rd := readerOf(in)
	r := Remedy{Who: ByYou, Says: fmt.Sprintf("strategy disable-user: the system's %s keeps %s", f.SystemUnit, f.Want.PortProto())}
	switch {
	case svc.Origin.Podman != nil:
		r.Ways = []Way{{Do: fmt.Sprintf("turn %s %s off: remove services.podman.containers.%s", rd.your, f.UserUnit, nixAttr(svc.Origin.Podman.Container)), In: InHome}}
	case svc.Origin.HomeManager != "":
		r.Ways = []Way{{Do: fmt.Sprintf("turn %s %s off", rd.your, f.UserUnit), In: InHome, Lines: []string{svc.Origin.HomeManager + ".enable = false;"}}}
	default:
		r.Ways = []Way{{Do: fmt.Sprintf("turn %s %s off where it is declared", rd.your, f.UserUnit), In: InHome}}
		u, known := in.UserUnits[f.UserUnit]
		switch {
		case known && u.UnitFileState == "generated":
			r.Ways[0].Do += " (a generator writes it; systemctl cannot disable it)"
		case known && u.UnitFileState != "" && !in.Root:
			r.Ways = append(r.Ways, Way{Do: "or, if it is not from home.nix", Lines: []string{"systemctl --user disable --now " + f.UserUnit}})
		}
	}
	return r
}

// flatten fills the per-kind lines programs read from the ways.
func (r *Remedy) flatten() {
	r.NixOS, r.Home, r.Commands = nil, nil, nil
	for _, w := range r.Ways {
		switch w.In {
		case InNixOS:
			r.NixOS = append(r.NixOS, w.Lines...)
		case InHome:
			if w.Lines == nil || w.Lines[0] != r.MoveLine {
				r.Home = append(r.Home, w.Lines...)
			}
		default:
			r.Commands = append(r.Commands, w.Lines...)
		}
	}
}

// andList joins "a", "a and b", "a, b and c".
func andList(ss []string) string {
	if len(ss) < 2 {
		return strings.Join(ss, "")
	}
	return strings.Join(ss[:len(ss)-1], ", ") + " and " + ss[len(ss)-1]
}

// nixAttr writes a name as a Nix attribute: bare where Nix allows it.
func nixAttr(name string) string {
	for i, c := range name {
		ok := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '\'')
		if !ok {
			return fmt.Sprintf("%q", name)
		}
	}
	return name
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, " ")
}
