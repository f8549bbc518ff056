// Package policy reads the system's yield policy, /etc/portclaim/policy.json,
// which the NixOS module renders: which system units may yield to which
// users, and where claims live. The user's manifest can only ask; this
// file, written by root, decides. Reading it (and trusting it only when
// root alone can have written it) is package safeopen's; this package
// only parses.
//
// Keep in sync with the policy in nix/lib/policy.nix.
package policy

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/portclaim/portclaim/pkg/jsonlimit"
	"github.com/portclaim/portclaim/pkg/unitname"
)

// Path is where the NixOS module puts the policy.
const Path = "/etc/portclaim/policy.json"

// DefaultClaimsDir is services.portclaim.claimsDir's default.
const DefaultClaimsDir = "/var/lib/portclaim/claims"

// ServedNote is root's note of the claims directory served last, kept
// outside any claims directory: when services.portclaim.claimsDir
// changes, the records are moved from there (claimstore.MoveTo).
const ServedNote = "/var/lib/portclaim/claims-dir"

// BrokerSocket is where the NixOS module's portclaim.socket listens for
// users' requests to the root broker.
const BrokerSocket = "/run/portclaim/broker.sock"

// Limits: a policy for a household is a few hundred bytes.
const (
	MaxSize  = 1 << 20
	maxDepth = 4
)

// ClaimsDirOrDefault is where the policy keeps claims; without a policy
// (nil), the default: the claims made under an earlier one are still
// there to read and give back.
func (p *Policy) ClaimsDirOrDefault() string {
	if p == nil {
		return DefaultClaimsDir
	}
	return p.ClaimsDir
}

// Policy is a validated policy.
type Policy struct {
	Path      string
	ClaimsDir string
	// Yield maps a system unit to the users it may yield to.
	Yield map[string][]string
}

// Allows reports whether unit may yield to user.
func (p Policy) Allows(user, unit string) bool {
	return slices.Contains(p.Yield[unit], user)
}

// YieldLine is the configuration.nix line that lets units yield to user,
// listing every user each unit yields to after the change (a second
// definition of the same list in one file would be an evaluation error).
func (p *Policy) YieldLine(user string, units ...string) string {
	var lines []string
	for _, u := range units {
		var users []string
		if p != nil {
			users = slices.Clone(p.Yield[u])
		}
		if !slices.Contains(users, user) {
			users = append(users, user)
		}
		sort.Strings(users)
		lines = append(lines, fmt.Sprintf("services.portclaim.yield.%q.users = [ %s ];", u, quoteAll(users)))
	}
	return strings.Join(lines, " ")
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, " ")
}

// Parse validates a policy document; every problem is reported with its
// JSON path.
func Parse(path string, data []byte) (Policy, error) {
	p := Policy{Path: path, ClaimsDir: DefaultClaimsDir, Yield: map[string][]string{}}
	var problems []string
	bad := func(at, format string, args ...any) {
		problems = append(problems, at+": "+fmt.Sprintf(format, args...))
	}
	if len(data) > MaxSize {
		return p, fmt.Errorf("policy %s is %d bytes; portclaim reads at most %d", path, len(data), MaxSize)
	}
	if err := jsonlimit.CheckDepth(data, maxDepth); err != nil {
		return p, fmt.Errorf("policy %s is %w", path, err)
	}
	if !gjson.ValidBytes(data) {
		return p, fmt.Errorf("policy %s is not valid JSON", path)
	}
	root := gjson.ParseBytes(data)
	if !root.IsObject() {
		return p, fmt.Errorf("policy %s is not a JSON object", path)
	}
	checkKeys := func(at string, obj gjson.Result, known ...string) {
		seen := map[string]bool{}
		obj.ForEach(func(k, _ gjson.Result) bool {
			switch {
			case seen[k.String()]:
				bad(at+k.String(), "is given twice")
			case !slices.Contains(known, k.String()):
				bad(at+k.String(), "unknown field")
			}
			seen[k.String()] = true
			return true
		})
	}
	checkKeys("", root, "version", "claimsDir", "yield")
	if v := root.Get("version"); v.Raw != "1" {
		bad("version", "%s is not supported; this portclaim reads version 1", orMissing(v))
	}
	if v := root.Get("claimsDir"); v.Exists() {
		if v.Type != gjson.String || !CleanAbs(v.String()) {
			bad("claimsDir", "%s is not a clean absolute path", v.Raw)
		} else {
			p.ClaimsDir = v.String()
		}
	}
	yield := root.Get("yield")
	if !yield.IsArray() {
		bad("yield", "must be a list of {unit, users}")
	}
	for i, y := range yield.Array() {
		at := fmt.Sprintf("yield[%d]", i)
		checkKeys(at+".", y, "unit", "users")
		unit := y.Get("unit")
		if unit.Type != gjson.String || !unitname.Claimable(unit.String()) {
			bad(at+".unit", "%s is not a .service or .socket unit name", orMissing(unit))
			continue
		}
		for j, u := range y.Get("users").Array() {
			if u.Type != gjson.String || !ValidUser(u.String()) {
				bad(fmt.Sprintf("%s.users[%d]", at, j), "%s is not a user name", u.Raw)
				continue
			}
			if !slices.Contains(p.Yield[unit.String()], u.String()) {
				p.Yield[unit.String()] = append(p.Yield[unit.String()], u.String())
			}
		}
	}
	if len(problems) > 0 {
		if len(problems) > 20 {
			problems = append(problems[:20], fmt.Sprintf("... and %d more", len(problems)-20))
		}
		return p, fmt.Errorf("policy %s is invalid:\n  %s", path, strings.Join(problems, "\n  "))
	}
	return p, nil
}

// CleanAbs reports whether dir is an absolute path with no "." or ".."
// segment, no doubled or trailing slash.
func CleanAbs(dir string) bool {
	return filepath.IsAbs(dir) && filepath.Clean(dir) == dir && dir != "/"
}

func orMissing(v gjson.Result) string {
	if !v.Exists() {
		return "missing"
	}
	return v.Raw
}

// ValidUser accepts the user names the NixOS module accepts (the shared
// corpus testdata/users.json holds both to the same rule), which also
// keeps them safe as a directory name under the claims directory. NixOS
// takes at most 31 characters.
func ValidUser(s string) bool {
	if s == "" || len(s) > 31 || s == "." || s == ".." {
		return false
	}
	for i, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' ||
			i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '.' || c == '$' && i == len(s)-1)
		if !ok {
			return false
		}
	}
	return true
}
