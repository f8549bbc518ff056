package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/portclaim/portclaim/pkg/claimstore"
	"github.com/portclaim/portclaim/pkg/gather"
	"github.com/portclaim/portclaim/pkg/manifest"
	"github.com/portclaim/portclaim/pkg/plan"
	"github.com/portclaim/portclaim/pkg/report"
	"github.com/portclaim/portclaim/pkg/safeopen"
)

// target is whose claims a command looks at or acts on.
type target struct {
	UID  uint32
	Name string
	Home string
	// Self: the user runs portclaim for themselves; else root does, for
	// them (root mode).
	Self bool
}

// Root reports whether root acts for another user (root mode).
func (t target) Root(a *app) bool { return a.euid == 0 && !t.Self }

// target finds whose claims to use: the caller's, or for root the user
// named with --user. acting commands refuse root without --user, and root
// named with it: root has no home-manager claims of its own, and claims
// made "for root" would be nobody's to give back.
func (a *app) target(name string, acting bool) (target, error) {
	if name == "" {
		if acting && a.euid == 0 {
			return target{}, fail(exitBadInput, a.usersHint(),
				"as root, name the user whose claims to act on: --user NAME")
		}
		if u, err := user.LookupId(strconv.Itoa(a.euid)); err == nil {
			return target{UID: uint32(a.euid), Name: u.Username, Home: u.HomeDir, Self: true}, nil
		}
		// A uid without a name (a container's): its number stands in.
		return target{UID: uint32(a.euid), Name: strconv.Itoa(a.euid), Self: true}, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return target{}, fail(exitBadInput, "give a user name from /etc/passwd", "--user %s: no such user", name)
	}
	uid, _ := strconv.Atoi(u.Uid)
	if uid != a.euid && a.euid != 0 {
		return target{}, fail(exitBadInput, "as root: sudo portclaim ... --user "+name, "--user %s: only root may act for another user", name)
	}
	if uid == 0 && acting {
		return target{}, fail(exitBadInput, a.usersHint(), "--user %s: root has no claims of its own; name the user whose claims to act on", name)
	}
	return target{UID: uint32(uid), Name: u.Username, Home: u.HomeDir, Self: uid == a.euid}, nil
}

// usersHint is root's next step when it named no user: the users it can
// act for, as far as the policy and the claims say.
func (a *app) usersHint() string {
	users := a.knownUsers()
	if len(users) == 0 {
		return "`sudo portclaim resolve --user NAME` acts for that user with root's authority; no user has claims, and the policy names none"
	}
	return fmt.Sprintf("`sudo portclaim resolve --user %s` acts for %s with root's authority; users with claims or in the policy: %s; `sudo portclaim check` shows every one's",
		users[0], users[0], strings.Join(users, ", "))
}

// knownUsers are the users root looks after: those with claims, and
// those the policy lets units yield to (they may have claims to come).
func (a *app) knownUsers() []string {
	pol, _ := gather.LoadPolicy(a.places.PolicyPath)
	users, _ := claimstore.Store{Dir: pol.ClaimsDirOrDefault()}.Users()
	if pol != nil {
		for _, us := range pol.Yield {
			for _, u := range us {
				if !slices.Contains(users, u) {
					users = append(users, u)
				}
			}
		}
	}
	sort.Strings(users)
	return users
}

// manifestPath is where the home-manager module links the manifest:
// $XDG_CONFIG_HOME/portclaim/manifest.json for the user themselves; for
// root, and for root acting for a user, in the home the user database
// names (root takes no XDG_* or HOME from its environment: `sudo -E`
// would hand it a user's).
func (a *app) manifestPath(t target) string {
	if t.Self && a.euid != 0 {
		if x := a.getenv("XDG_CONFIG_HOME"); filepath.IsAbs(x) {
			return filepath.Join(x, "portclaim", "manifest.json")
		}
		if h := a.getenv("HOME"); h != "" {
			return filepath.Join(h, ".config", "portclaim", "manifest.json")
		}
	}
	return filepath.Join(t.Home, ".config", "portclaim", "manifest.json")
}

// loadManifest reads the manifest named ("-": standard input), or the
// target's, or without one the built-in map; the source says which.
func (a *app) loadManifest(path string, t target) (manifest.Manifest, report.Manifest, error) {
	src := report.Manifest{Path: path, Kind: report.ManifestGiven}
	if path == "" {
		src = report.Manifest{Path: a.manifestPath(t), Kind: report.ManifestLinked}
	}
	var data []byte
	var err error
	switch {
	case path == "-":
		data, err = readAtMost(a.stdin, manifest.MaxSize)
	case src.Kind == report.ManifestLinked && a.euid == 0 && t.UID != 0:
		data, err = safeopen.UserFile(src.Path, t.UID, manifest.MaxSize)
	default:
		data, err = safeopen.ReadFile(src.Path, manifest.MaxSize)
	}
	if src.Kind == report.ManifestLinked && errors.Is(err, fs.ErrNotExist) {
		return manifest.Default(), report.Manifest{Kind: report.ManifestBuiltIn}, nil
	}
	if err != nil {
		return manifest.Manifest{}, src, manifestReadError(src.Path, err)
	}
	m, err := manifest.Parse(src.Path, data)
	if err != nil {
		return m, src, fail(exitBadInput, "nothing was checked or changed; fix the fields above (the home-manager module's services.portclaim options render this file)", "%v", err)
	}
	return m, src, nil
}

// builtInNote says that the built-in map stands in for a manifest, and
// where the manifest was looked for.
func (a *app) builtInNote(src report.Manifest, t target) []string {
	if src.Kind != report.ManifestBuiltIn {
		return nil
	}
	return []string{fmt.Sprintf("no manifest at %s (the home-manager module links %s there): checking the built-in map of known services instead",
		a.manifestPath(t), t.possessive(a))}
}

// possessive is "yours", or for root, "alice's".
func (t target) possessive(a *app) string {
	if t.Root(a) {
		return t.Name + "'s"
	}
	return "yours"
}

// manifestReadError says why a manifest could not be read, and what next.
func manifestReadError(path string, err error) error {
	if errors.Is(err, safeopen.ErrTooLarge) {
		return fail(exitBadInput, "the home-manager module renders a manifest of a few kilobytes; is this the right file?",
			"manifest %s is larger than portclaim reads (%d bytes); nothing was checked or changed", path, manifest.MaxSize)
	}
	return fail(exitBadInput, "nothing was checked or changed; give a readable manifest with --manifest FILE", "reading the manifest: %v", err)
}

// lookFor finds whose claims (--user), reads their manifest (--manifest,
// else theirs, else the built-in map): what check and resolve begin
// with. acting refuses root without --user.
func (a *app) lookFor(userFlag, manifestFlag string, acting bool) (target, manifest.Manifest, report.Manifest, error) {
	t, err := a.target(userFlag, acting)
	if err != nil {
		return t, manifest.Manifest{}, report.Manifest{}, err
	}
	m, src, err := a.loadManifest(manifestFlag, t)
	return t, m, src, err
}

// view is one look at the machine for a manifest, decided and planned.
type view struct {
	snap  gather.Snapshot
	plan  plan.Plan
	check report.Check // its Findings are every claimed port's verdict
}

// looking is how a look plans: for a resolve that may not act for want
// of a terminal (declined), and with what it shares with other looks of
// the run (nil: nothing).
type looking struct {
	declined bool
	shared   *gather.Shared
}

func (a *app) look(ctx context.Context, m manifest.Manifest, src report.Manifest, t target, how looking) view {
	var snap gather.Snapshot
	if how.shared == nil {
		snap = gather.Look(ctx, m, t.UID, t.Name, a.names.Of, a.places)
	} else {
		snap = how.shared.Look(ctx, m, t.UID, t.Name, a.names.Of)
	}
	p := plan.Make(plan.Input{Manifest: m, Findings: snap.Findings, User: t.Name, Root: t.Root(a), Policy: snap.Policy,
		PolicyProblem: snap.PolicyProblem, Broker: snap.Broker, BrokerSocket: a.places.BrokerSocket, Declined: how.declined,
		System: snap.System, UserUnits: snap.UserUnits, Sockets: snap.Sockets})
	notes := append(append(a.builtInNote(src, t), snap.Notes...), m.Notes...)
	return view{snap: snap, plan: p, check: report.Check{User: t.Name, Root: t.Root(a), Manifest: src, Findings: snap.Findings,
		Items: p.Items, UserUnits: snap.UserUnits, Notes: notes, Errors: snap.Broken, DBusCalls: snap.DBusCalls, NameOf: a.names.Of}}
}

// readAtMost reads r (standard input, for FILE "-") to its end, refusing
// more than max bytes as safeopen refuses a file that large.
func readAtMost(r io.Reader, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err == nil && int64(len(data)) > max {
		return nil, fmt.Errorf("standard input: %w (more than %d bytes)", safeopen.ErrTooLarge, max)
	}
	return data, err
}
