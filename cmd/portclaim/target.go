package main

import (
	"fmt"
	"os/user"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/portclaim/portclaim/pkg/claimstore"
	"github.com/portclaim/portclaim/pkg/places"
	"github.com/portclaim/portclaim/pkg/policy"
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
// act for.
func (a *app) usersHint() string {
	pol, _ := places.LoadPolicy(a.places.PolicyPath)
	users, _ := knownUsers(a.claimStores(pol), pol)
	if len(users) == 0 {
		return "`sudo portclaim resolve --user NAME` acts for that user with root's authority; no user has claims, and the policy names none"
	}
	return fmt.Sprintf("`sudo portclaim resolve --user %s` acts for %s with root's authority; users with claims or in the policy: %s; `sudo portclaim check` shows every one's",
		users[0], users[0], strings.Join(users, ", "))
}

// claimStores are where the claims are now: the directory they are read
// from (places.ClaimsDir) and, while their move into the policy's is
// under way or stopped half way, the policy's too.
func (a *app) claimStores(pol *policy.Policy) []claimstore.Store {
	stores := []claimstore.Store{{Dir: places.ClaimsDir(pol, a.places.ServedNote)}}
	if pol != nil && stores[0].Dir != pol.ClaimsDir {
		stores = append(stores, claimstore.Store{Dir: pol.ClaimsDir})
	}
	return stores
}

// knownUsers are the users root looks after, sorted: those with records
// in stores, and those pol (when given) lets units yield to: they may
// have claims to come.
func knownUsers(stores []claimstore.Store, pol *policy.Policy) ([]string, error) {
	var users []string
	add := func(u string) {
		if !slices.Contains(users, u) {
			users = append(users, u)
		}
	}
	for _, st := range stores {
		more, err := st.Users()
		if err != nil {
			return users, err
		}
		for _, u := range more {
			add(u)
		}
	}
	if pol != nil {
		for _, us := range pol.Yield {
			for _, u := range us {
				add(u)
			}
		}
	}
	sort.Strings(users)
	return users, nil
}
