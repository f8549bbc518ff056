// Package claim is the record a claim file holds: which user claimed
// which system unit for which ports, how the unit is kept down, what
// state it was in before the first claim, and a release under way. The
// file's existence keeps the unit down (the NixOS module gives the unit
// ConditionPathExists=!<claimsDir>/<user>/<unit>); its content lets a
// release restore exactly what was there. Package claimstore keeps the
// files.
package claim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/policy"
	"github.com/portclaim/portclaim/pkg/unitname"
)

// Version is the record format written; Decode also reads version 2
// (no giveBack) and 1 (the records of portclaim 0.1, which had no
// dependents or releases).
const Version = 3

// How a claim keeps its unit down.
const (
	// ByCondition: the unit's ConditionPathExists names the claim file.
	ByCondition = "condition"
	// ByTransientMask (root mode only): /run/systemd/transient/<unit> ->
	// /dev/null, a runtime mask that outranks /etc/systemd/system, where
	// NixOS keeps its units (a `mask --runtime` link in
	// /run/systemd/system does not), gone at the next boot.
	ByTransientMask = "transient-mask"
	// ByNothing: the unit has no condition for this claim and it was not
	// masked: it is down now and starts again at boot.
	ByNothing = "none"
)

// Claim is the content of one claim file.
type Claim struct {
	Version   int                 `json:"version"`
	User      string              `json:"user"`
	Unit      string              `json:"unit"`
	Service   string              `json:"service"`
	Ports     []endpoint.Endpoint `json:"ports"`
	ClaimedAt time.Time           `json:"claimedAt"`
	Method    string              `json:"method"`
	// Prior is the unit's state before the first claim on it, by any
	// user: a later claim copies it, so that the last release restores
	// what was there before anyone claimed it.
	Prior Prior `json:"prior"`
	// With names the unit this one was stopped with, for a unit that
	// Requires=, BindsTo= or is PartOf= it (systemd stops those along);
	// it is released with that unit. "" for a unit asked for.
	With string `json:"with,omitempty"`
	// Release records a release under way: the record then lives in the
	// user's .releasing directory, where no condition looks, until the
	// unit is back in its prior state.
	Release *Release `json:"release,omitempty"`
	// GiveBack records that the user asked for the unit back while it
	// could not come back yet (their own unit still held its port, say):
	// the claim keeps the unit down (not started into a held port) until
	// the next release, home-manager switch or reconcile gives it back.
	// Version 3.
	GiveBack *GiveBack `json:"giveBack,omitempty"`
}

// GiveBack is a release asked for and deferred.
type GiveBack struct {
	AskedAt time.Time `json:"askedAt"`
	Why     string    `json:"why"` // why it waits
}

// Prior is a unit's state before portclaim touched it.
type Prior struct {
	ActiveState   string `json:"activeState"`
	UnitFileState string `json:"unitFileState"`
}

// WasActive reports whether a release should start the unit again.
func (p Prior) WasActive() bool {
	switch p.ActiveState {
	case "active", "activating", "reloading", "refreshing":
		return true
	}
	return false
}

// Release is a release under way.
type Release struct {
	Began    time.Time `json:"began"`
	Attempts int       `json:"attempts"`
	// LastError is why the last attempt did not bring the unit back.
	LastError string `json:"lastError,omitempty"`
}

// Encode writes c as its file's content.
func Encode(c Claim) []byte {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		panic(err) // only plain data
	}
	return append(data, '\n')
}

// Decode reads a claim file's content and checks that it is whole: a
// truncated or hand-edited record must be reported as such, never read
// as "the unit was not running".
func Decode(data []byte) (Claim, error) {
	var c Claim
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("not a whole claim record: %w", err)
	}
	if dec.More() {
		return c, fmt.Errorf("not a whole claim record: data after the record")
	}
	switch {
	case c.Version < 1 || c.Version > Version:
		return c, fmt.Errorf("claim record version %d is not one this portclaim reads (1 to %d)", c.Version, Version)
	case c.GiveBack != nil && c.Version < 3:
		return c, fmt.Errorf("claim record version %d has giveBack, which version 3 brought", c.Version)
	case !unitname.Claimable(c.Unit):
		return c, fmt.Errorf("claim record names %q, not a .service or .socket unit", c.Unit)
	case !policy.ValidUser(c.User):
		return c, fmt.Errorf("claim record names %q, not a user name", c.User)
	case c.ClaimedAt.IsZero() || c.Prior.ActiveState == "":
		return c, fmt.Errorf("claim record lacks claimedAt or prior.activeState")
	case c.Method != ByCondition && c.Method != ByTransientMask && c.Method != ByNothing:
		return c, fmt.Errorf("claim record has method %q", c.Method)
	case c.With != "" && !unitname.Claimable(c.With):
		return c, fmt.Errorf("claim record names %q as the unit it was stopped with", c.With)
	}
	return c, nil
}

// Record is one claim record as found in the claims directory, readable
// or not: what the store lists and the root side decides on.
type Record struct {
	User, Unit string
	Path       string
	Claim      Claim // when Problem is ""
	// Problem says why the record cannot be believed (truncated, not
	// root's): such a record still keeps its unit down, and portclaim
	// changes nothing about that unit until root repairs or removes it.
	Problem string
	// Releasing: the record of a release under way.
	Releasing bool
}
