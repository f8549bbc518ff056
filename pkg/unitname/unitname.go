// Package unitname validates systemd unit names before portclaim uses them
// anywhere: in D-Bus calls, in file names under the claims directory, in
// messages. Names come from JSON a user wrote, so they are untrusted.
package unitname

import (
	"fmt"
	"strings"
)

// Types are the unit type suffixes systemd accepts (systemd.unit(5)).
var Types = []string{
	"service", "socket", "device", "mount", "automount", "swap",
	"target", "path", "timer", "slice", "scope",
}

// maxLen is UNIT_NAME_MAX in systemd (including the suffix).
const maxLen = 255

// Validate returns nil when name is a plain (non-template) unit name with a
// known type suffix. Templates ("foo@.service") are refused: a template is
// not something that can hold a port. Instances ("foo@bar.service") are fine.
func Validate(name string) error {
	if name == "" {
		return fmt.Errorf("empty unit name")
	}
	if len(name) > maxLen {
		return fmt.Errorf("unit name %q is longer than %d characters", name, maxLen)
	}
	for i := 0; i < len(name); i++ {
		if !validChar(name[i]) {
			return fmt.Errorf("unit name %q contains %q, which systemd does not allow in unit names", name, string(name[i]))
		}
	}
	dot := strings.LastIndexByte(name, '.')
	if dot <= 0 {
		return fmt.Errorf("unit name %q has no type suffix (e.g. %q)", name, name+".service")
	}
	prefix, suffix := name[:dot], name[dot+1:]
	if !isType(suffix) {
		return fmt.Errorf("unit name %q has unknown type %q (one of %s)", name, suffix, strings.Join(Types, ", "))
	}
	if at := strings.IndexByte(prefix, '@'); at >= 0 {
		if at == 0 {
			return fmt.Errorf("unit name %q starts with '@'", name)
		}
		if at == len(prefix)-1 {
			return fmt.Errorf("unit name %q is a template; name an instance such as %q", name, prefix+"NAME."+suffix)
		}
		if strings.Count(prefix, "@") > 1 {
			return fmt.Errorf("unit name %q has more than one '@'", name)
		}
	}
	return nil
}

// Type returns the suffix of a valid unit name ("service" for "a.service").
func Type(name string) string {
	if dot := strings.LastIndexByte(name, '.'); dot >= 0 {
		return name[dot+1:]
	}
	return ""
}

// Base returns the name without its type suffix ("ollama" for "ollama.service").
func Base(name string) string {
	if dot := strings.LastIndexByte(name, '.'); dot >= 0 {
		return name[:dot]
	}
	return name
}

func isType(s string) bool {
	for _, t := range Types {
		if s == t {
			return true
		}
	}
	return false
}

// validChar mirrors VALID_CHARS in systemd's unit-name.c: alphanumerics and
// ":-_.\@". Everything else, '/' and whitespace included, is refused.
func validChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte(":-_.\\@", c) >= 0
}

// Claimable reports whether a claim may name unit: a valid service or
// socket. Nothing else holds a port, so nothing else is ever stopped.
func Claimable(unit string) bool {
	t := Type(unit)
	return Validate(unit) == nil && (t == "service" || t == "socket")
}

// SocketFor names the socket unit that activates a service by default
// (systemd.socket(5): foo.socket activates foo.service); "" for a unit
// that is not a service.
func SocketFor(service string) string {
	if base, ok := strings.CutSuffix(service, ".service"); ok {
		return base + ".socket"
	}
	return ""
}

// ManagerScope is where a systemd manager itself runs (pid 1, or a user's
// systemd --user): the processes in it hold sockets only for .socket
// units.
const ManagerScope = "init.scope"
