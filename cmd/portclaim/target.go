package main

import (
	"context"
	"errors"
	"io/fs"
	"os/user"
	"path/filepath"
	"strconv"

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
// named with --user. acting commands refuse root without --user: root
// has no home-manager claims of its own, and claims made "for root" would
// be nobody's to give back.
func (a *app) target(name string, acting bool) (target, error) {
	if name == "" {
		if acting && a.euid == 0 {
			return target{}, fail(exitBadInput, "`sudo portclaim resolve --user alice` acts for alice with root's authority; `portclaim status` shows everyone's claims",
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
	return target{UID: uint32(uid), Name: u.Username, Home: u.HomeDir, Self: uid == a.euid}, nil
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

// loadManifest reads the manifest named, or the target's, or without one
// the built-in map; source says which, for messages.
func (a *app) loadManifest(path string, t target) (manifest.Manifest, string, error) {
	explicit := path != ""
	if !explicit {
		path = a.manifestPath(t)
	}
	var data []byte
	var err error
	if !explicit && a.euid == 0 && t.UID != 0 {
		data, err = safeopen.UserFile(path, t.UID, manifest.MaxSize)
	} else {
		data, err = safeopen.ReadFile(path, manifest.MaxSize)
	}
	if !explicit && errors.Is(err, fs.ErrNotExist) {
		return manifest.Default(), builtinSource, nil
	}
	if err != nil {
		return manifest.Manifest{}, path, manifestReadError(path, err)
	}
	m, err := manifest.Parse(path, data)
	if err != nil {
		return m, path, fail(exitBadInput, "nothing was checked or changed; fix the fields above (the home-manager module's services.portclaim options render this file)", "%v", err)
	}
	return m, path, nil
}

// builtinSource names the built-in map where a manifest's path would be.
const builtinSource = "the built-in map of known services"

// announce says, once, that the built-in map stands in for a manifest.
func (a *app) announce(source string, t target) {
	if source == builtinSource {
		a.notef("no manifest at %s (the home-manager module links yours there): checking the built-in map of known services instead", a.manifestPath(t))
	}
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
// else theirs, else the built-in map) and looks: what check and resolve
// both begin with. acting refuses root without --user.
func (a *app) lookFor(ctx context.Context, userFlag, manifestFlag string, acting bool) (target, manifest.Manifest, string, view, error) {
	t, err := a.target(userFlag, acting)
	if err != nil {
		return t, manifest.Manifest{}, "", view{}, err
	}
	m, source, err := a.loadManifest(manifestFlag, t)
	if err != nil {
		return t, m, source, view{}, err
	}
	return t, m, source, a.look(ctx, m, source, t), nil
}

// view is one look at the machine for a manifest, decided and planned.
type view struct {
	snap  gather.Snapshot
	plan  plan.Plan
	check report.Check // its Findings are every claimed port's verdict
}

func (a *app) look(ctx context.Context, m manifest.Manifest, source string, t target) view {
	return a.lookShared(ctx, nil, m, source, t)
}

// lookShared is look with what sh shares with other looks of the run
// (nil: nothing).
func (a *app) lookShared(ctx context.Context, sh *gather.Shared, m manifest.Manifest, source string, t target) view {
	var snap gather.Snapshot
	if sh == nil {
		snap = gather.Look(ctx, m, t.UID, t.Name, a.names.Of, a.places)
	} else {
		snap = sh.Look(ctx, m, t.UID, t.Name, a.names.Of)
	}
	p := plan.Make(plan.Input{Manifest: m, Findings: snap.Findings, User: t.Name, Root: t.Root(a), Policy: snap.Policy,
		PolicyProblem: snap.PolicyProblem, Broker: snap.Broker, BrokerSocket: a.places.BrokerSocket, System: snap.System, Sockets: snap.Sockets})
	notes := append(append([]string{}, snap.Notes...), m.Notes...)
	return view{snap: snap, plan: p, check: report.Check{User: t.Name, Source: source, Findings: snap.Findings,
		Items: p.Items, UserUnits: snap.UserUnits, Notes: notes, Errors: snap.Broken, DBusCalls: snap.DBusCalls, NameOf: a.names.Of}}
}
