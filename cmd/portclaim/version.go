package main

import (
	"fmt"
	"runtime/debug"

	"github.com/portclaim/portclaim/pkg/manifest"
	"github.com/portclaim/portclaim/pkg/protocol"
)

type versionCmd struct{}

func (versionCmd) Run(a *app) error {
	fmt.Fprintln(a.stdout, versionLine())
	return nil
}

// versionLine is the version the build stamped, or the module's.
func versionLine() string {
	v, rev := version, commit
	if v == "" {
		v = "devel"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	if rev != "" {
		v += " (" + rev + ")"
	}
	return fmt.Sprintf("portclaim %s; reads manifest versions %d to %d; broker protocol %d", v, manifest.OldestVersion, manifest.Version, protocol.Version)
}
