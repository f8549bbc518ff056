package plan

import "fmt"

// Asking is what decides whether resolve asks before each yield.
type Asking struct {
	User string // whose claims resolve acts on
	// Root: root acts for User (root mode).
	Root bool
	// Yes: --yes; DryRun: --dry-run, which changes nothing, so asks
	// nothing.
	Yes, DryRun bool
	// AutoResolve is the user's manifest's word (autoResolve).
	AutoResolve bool
	// Terminal: a person can answer a prompt on standard input.
	Terminal bool
}

// Consent says whether resolve asks before each yield, and, when there
// is no terminal to ask on, why nothing is done (cannot; Input.Declined
// then). The user's manifest decides for the user (autoResolve); root
// acting for a user asks unless --yes, whatever that user's manifest
// says: the manifest names the units, and it is the user's, not root's,
// word that they may stop.
func Consent(in Asking) (ask bool, cannot string) {
	if in.Yes || in.DryRun {
		return false, ""
	}
	switch {
	case in.Root:
		if !in.Terminal {
			return false, fmt.Sprintf("root acts for %s only when asked on a terminal, and there is none: reporting only; `sudo portclaim resolve --user %s --yes` acts without asking", in.User, in.User)
		}
	case !in.AutoResolve:
		if !in.Terminal {
			return false, "autoResolve is off and there is no terminal to ask: reporting only; `portclaim resolve --yes` acts without asking, or set services.portclaim.autoResolve = true; in home.nix"
		}
	default:
		return false, ""
	}
	return true, ""
}
