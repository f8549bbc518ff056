package yield

import (
	"context"
	"errors"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"time"
)

// getentPaths are where getent(1) lives on NixOS and on Debian.
var getentPaths = []string{"/run/current-system/sw/bin/getent", "/usr/bin/getent", "/bin/getent"}

// lookupUID finds a user's uid in the system's user database. Go's own
// lookup (without cgo) reads /etc/passwd alone; a user from NSS (LDAP,
// systemd-homed) is asked of getent.
func lookupUID(ctx context.Context, name string) (uint32, bool) {
	if u, err := user.Lookup(name); err == nil {
		uid, err := strconv.ParseUint(u.Uid, 10, 32)
		return uint32(uid), err == nil
	}
	f, found, _ := getent(ctx, name)
	if !found || len(f) < 3 || f[0] != name {
		return 0, false
	}
	uid, err := strconv.ParseUint(f[2], 10, 32)
	return uint32(uid), err == nil
}

// userGone reports whether the system's user database says name does not
// exist. A user portclaim cannot look up (no getent to ask, or getent
// failing otherwise than with "not found") is not gone: reconcile must
// never take a user it cannot see for one removed (nor one not found
// while the lookups may not be up: Service.lookupsReady).
func userGone(ctx context.Context, name string) bool {
	if _, err := user.Lookup(name); err == nil {
		return false
	}
	_, found, asked := getent(ctx, name)
	return asked && !found
}

// nsswitchPath is where the sources of the user database are named.
var nsswitchPath = "/etc/nsswitch.conf"

// localUsers reports whether nsswitch.conf (its content) has passwd
// served from local files alone: a user they do not list does not exist.
// Any other source (sss, ldap, winbind, nis through compat, systemd's
// userdb) may answer "not found" while its service is not up yet.
func localUsers(nsswitch []byte) bool {
	for _, line := range strings.Split(string(nsswitch), "\n") {
		db, sources, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || strings.TrimSpace(db) != "passwd" {
			continue
		}
		for _, src := range strings.Fields(sources) {
			if !strings.HasPrefix(src, "[") && src != "files" {
				return false
			}
		}
		return true
	}
	return true // glibc's default without a passwd line: files
}

// LookupName finds the name of uid, through getent when Go's own lookup
// does not know it.
func LookupName(ctx context.Context, uid uint32) (string, bool) {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return u.Username, true
	}
	f, found, _ := getent(ctx, id)
	if !found || len(f) < 3 || f[2] != id {
		return "", false
	}
	return f[0], true
}

// getents bounds the getent processes running at once: the broker's
// unit has TasksMax=64, and a flood of connections from uids without a
// name (a rootless container's) would each start one, and with a slow
// directory (sssd, LDAP) hold it; beyond the bound a lookup waits.
var getents = make(chan struct{}, 4)

// getent asks getent(1) for a passwd entry: its fields, whether it found
// one, and whether getent could be asked at all.
func getent(ctx context.Context, key string) (fields []string, found, asked bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	select {
	case getents <- struct{}{}:
		defer func() { <-getents }()
	case <-ctx.Done():
		return nil, false, false
	}
	for _, p := range getentPaths {
		out, err := exec.CommandContext(ctx, p, "passwd", key).Output()
		var exit *exec.ExitError
		switch {
		case err == nil:
			return strings.Split(strings.TrimSpace(string(out)), ":"), true, true
		case errors.As(err, &exit) && exit.ExitCode() == 2:
			return nil, false, true // getent(1): "One or more supplied key could not be found"
		case errors.As(err, &exit):
			return nil, false, false // it ran, and failed otherwise
		}
	}
	return nil, false, false
}
