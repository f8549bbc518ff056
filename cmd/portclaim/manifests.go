package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"

	"github.com/portclaim/portclaim/pkg/manifest"
	"github.com/portclaim/portclaim/pkg/report"
	"github.com/portclaim/portclaim/pkg/safeopen"
)

// manifestFlag is --manifest of check, resolve and release.
type manifestFlag struct {
	Manifest string `help:"Manifest file (JSON; - for standard input). Default: the one home-manager links to $XDG_CONFIG_HOME/portclaim/manifest.json, else the built-in map." placeholder:"FILE" type:"path"`
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

// whose is how t's things are named to whoever reads: "your", or, to root
// reading alice's, "alice's".
func (t target) whose(a *app) string {
	if t.Root(a) {
		return t.Name + "'s"
	}
	return "your"
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

// readAtMost reads r (standard input, for FILE "-") to its end, refusing
// more than max bytes as safeopen refuses a file that large.
func readAtMost(r io.Reader, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err == nil && int64(len(data)) > max {
		return nil, fmt.Errorf("standard input: %w (more than %d bytes)", safeopen.ErrTooLarge, max)
	}
	return data, err
}
