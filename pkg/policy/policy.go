// Package policy reads the system's yield policy, /etc/portclaim/policy.json,
// which the NixOS module renders: which system units may yield to which
// users, and where claims live. The user's manifest can only ask; this
// file, written by root, decides.
//
// Keep in sync with renderPolicy in module.nix.
package policy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/tidwall/gjson"

	"github.com/portclaim/portclaim/pkg/unitname"
)

// DefaultPath is where the NixOS module puts the policy.
const DefaultPath = "/etc/portclaim/policy.json"

// DefaultClaimsDir is services.portclaim.claimsDir's default.
const DefaultClaimsDir = "/var/lib/portclaim/claims"

// Policy is a validated, trusted policy.
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

// ErrMissing means no policy is installed: nothing may be yielded.
var ErrMissing = errors.New("no portclaim policy is installed")

// Load reads and checks the policy at path. It refuses a policy that a
// non-root user could have written: the file and its directory must be
// owned by root and writable by nobody else.
func Load(path string) (Policy, error) {
	if err := trusted(path); err != nil {
		return Policy{}, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Policy{}, fmt.Errorf("reading the policy: %w", err)
	}
	return Parse(path, data)
}

func trusted(path string) error {
	for _, p := range []string{path, filepath.Dir(path)} {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w (%s does not exist; on NixOS enable services.portclaim and list the units in services.portclaim.yield)", ErrMissing, path)
		}
		if err != nil {
			return fmt.Errorf("reading the policy: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || st.Uid != 0 || fi.Mode().Perm()&0o022 != 0 {
			return fmt.Errorf("not trusting the policy %s: %s must be owned by root and writable by root only (it is uid %d, mode %v)", path, p, st.Uid, fi.Mode().Perm())
		}
	}
	return nil
}

// Parse validates a policy document; every problem is reported with its
// JSON path.
func Parse(path string, data []byte) (Policy, error) {
	p := Policy{Path: path, ClaimsDir: DefaultClaimsDir, Yield: map[string][]string{}}
	var problems []string
	bad := func(at, format string, args ...any) {
		problems = append(problems, at+": "+fmt.Sprintf(format, args...))
	}
	if !gjson.ValidBytes(data) {
		return p, fmt.Errorf("policy %s is not valid JSON", path)
	}
	root := gjson.ParseBytes(data)
	if v := root.Get("version"); v.Raw != "1" {
		bad("version", "%s is not supported; this portclaim reads version 1", orMissing(v))
	}
	if v := root.Get("claimsDir"); v.Exists() {
		if v.Type != gjson.String || !filepath.IsAbs(v.String()) || filepath.Clean(v.String()) != v.String() {
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
		unit := y.Get("unit").String()
		if err := unitname.Validate(unit); err != nil || y.Get("unit").Type != gjson.String {
			bad(at+".unit", "%s is not a unit name", orMissing(y.Get("unit")))
			continue
		}
		for j, u := range y.Get("users").Array() {
			if u.Type != gjson.String || !validUser(u.String()) {
				bad(fmt.Sprintf("%s.users[%d]", at, j), "%s is not a user name", u.Raw)
				continue
			}
			if !slices.Contains(p.Yield[unit], u.String()) {
				p.Yield[unit] = append(p.Yield[unit], u.String())
			}
		}
	}
	if len(problems) > 0 {
		return p, fmt.Errorf("policy %s is invalid:\n  %s", path, strings.Join(problems, "\n  "))
	}
	return p, nil
}

func orMissing(v gjson.Result) string {
	if !v.Exists() {
		return "missing"
	}
	return v.Raw
}

// validUser accepts the user names NixOS allows (users.users.<name>), which
// also keeps them safe as a directory name under the claims directory.
func validUser(s string) bool {
	if s == "" || len(s) > 32 || s == "." || s == ".." {
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
