// Package manifest reads and validates the user's service-to-port map,
// which the home-manager module renders (ARCHITECTURE.md, "The manifest").
// Validation is complete but bounded: every problem is reported with its
// JSON path, up to a limit, so one run of `portclaim validate` tells the
// user what to fix, and no input can make it slow or large.
//
// Keep in sync with the renderer in nix/lib/manifest.nix.
package manifest

import (
	"fmt"
	"strings"

	"github.com/portclaim/portclaim/pkg/endpoint"
)

// Version is the newest manifest contract this build reads; it reads
// every version from OldestVersion up to this one.
const (
	OldestVersion = 1
	Version       = 2
)

// Strategy says who wins a conflict.
type Strategy string

const (
	DisableSystem Strategy = "disable-system" // the user's service wins
	DisableUser   Strategy = "disable-user"   // the system service wins
	Report        Strategy = "report"         // change nothing
)

// DefaultStrategy is what a manifest without "strategy" means.
const DefaultStrategy = DisableSystem

var strategies = []Strategy{DisableSystem, DisableUser, Report}

// Manifest is a validated manifest.
type Manifest struct {
	Version     int
	Strategy    Strategy
	AutoResolve bool
	Strict      bool
	Services    []Service
	// Notes are what the renderer wants the user to know about claims
	// it could not derive (a container on the host network publishes no
	// ports). Version 2.
	Notes []string
}

// Service pairs the system units and user units that want the same ports.
type Service struct {
	Name        string
	SystemUnits []string
	UserUnits   []string
	Ports       []endpoint.Endpoint
	// Origin says where home-manager declares the user side, so a fix can
	// name the exact option; the zero value for a claim declared by hand.
	Origin Origin
}

// Origin is where a derived claim comes from (manifest version 2).
type Origin struct {
	// Podman: services.podman.containers.<Container>, whose ports list
	// is Ports, verbatim.
	Podman *PodmanOrigin
	// HomeManager names a home-manager service with port and host
	// options, e.g. "services.ollama".
	HomeManager string
}

// PodmanOrigin is a home-manager podman container and its declared ports.
type PodmanOrigin struct {
	Container string
	Ports     []string
}

// Problem is one thing wrong with a manifest, at a JSON path such as
// "services[1].ports[0].port".
type Problem struct {
	Path    string
	Message string
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// Error lists the problems found in one manifest.
type Error struct {
	Source   string // file name, or "the built-in map"
	Problems []Problem
	// More counts problems found beyond those listed.
	More int
}

func (e *Error) Error() string {
	var b strings.Builder
	n := len(e.Problems) + e.More
	fmt.Fprintf(&b, "manifest %s is invalid (%d problem%s):", e.Source, n, plural(n))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	if e.More > 0 {
		fmt.Fprintf(&b, "\n  ... and %d more", e.More)
	}
	return b.String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// Limits on what Parse reads: a manifest home-manager renders for a
// person is a few kilobytes; anything far larger is a mistake or an
// attack, and is refused before it costs time or memory.
const (
	MaxSize     = 1 << 20 // bytes
	MaxDepth    = 8       // nesting of objects and lists (a manifest uses 6)
	MaxServices = 1024
	MaxPorts    = 16384 // in all services
	MaxNotes    = 64
	maxProblems = 50
)

// The name checks are plain functions, not regular expressions: every
// run of portclaim, a switch's included, would compile those at start.

// ValidName reports whether s is a service or container name: a letter
// or digit, then letters, digits, '_', '.' and '-'.
func ValidName(s string) bool {
	if s == "" || !alnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// validOptionPath reports whether s is a dotted Nix option path of two or
// more identifiers, such as "services.ollama".
func validOptionPath(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return false
	}
	for _, p := range parts {
		if p == "" || !(alpha(p[0]) || p[0] == '_') {
			return false
		}
		for i := 1; i < len(p); i++ {
			if c := p[i]; !alnum(c) && c != '_' && c != '\'' && c != '-' {
				return false
			}
		}
	}
	return true
}

func alpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func alnum(c byte) bool { return alpha(c) || c >= '0' && c <= '9' }
