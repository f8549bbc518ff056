package report

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/lastrun"
	"github.com/portclaim/portclaim/pkg/plan"
)

// StatusDoc is status's JSON document, and what its text and metrics
// are rendered from: everything status read, read before anything is
// written.
type StatusDoc struct {
	Policy        *StatusPolicy `json:"policy"`
	PolicyProblem string        `json:"policyProblem,omitempty"`
	// PolicyUntrusted: a policy is there but cannot be believed; every
	// claim stands as it is until it is fixed.
	PolicyUntrusted bool `json:"policyUntrusted,omitempty"`
	// ClaimsIn is where the claims are read from when that is not the
	// policy's claimsDir: the directory served before, while its records
	// wait to be moved (or without a trusted policy).
	ClaimsIn string `json:"claimsIn,omitempty"`
	// Broker: the broker's socket listens; BrokerState says more:
	// "listening", "stopped" (its file is there, nothing listens) or
	// "missing".
	Broker      bool         `json:"broker"`
	BrokerState host.Broker  `json:"brokerState"`
	Users       []StatusUser `json:"users"`
}

// StatusPolicy is the policy as status shows it.
type StatusPolicy struct {
	Path      string              `json:"path"`
	ClaimsDir string              `json:"claimsDir"`
	Yield     map[string][]string `json:"yield"`
}

// StatusUser is one user's claims and last run.
type StatusUser struct {
	User    string          `json:"user"`
	Claims  []StatusClaim   `json:"claims"`
	LastRun *lastrun.Record `json:"lastRun,omitempty"`
	// LastRunProblem says why the last run is not shown.
	LastRunProblem string `json:"lastRunProblem,omitempty"`
}

// StatusClaim is one claim record, and who holds its ports now.
type StatusClaim struct {
	Unit      string              `json:"unit"`
	Service   string              `json:"service,omitempty"`
	Ports     []endpoint.Endpoint `json:"ports"`
	ClaimedAt *time.Time          `json:"claimedAt,omitempty"`
	Method    string              `json:"method,omitempty"`
	// KeptDown: what the claim promises holds now (a mask in place, or
	// the unit's condition, which the NixOS module renders).
	KeptDown  bool   `json:"keptDown"`
	Prior     string `json:"prior,omitempty"`
	With      string `json:"with,omitempty"`
	Releasing bool   `json:"releasing,omitempty"`
	// GiveBack says why a release the user asked for waits; the claim
	// keeps the unit down meanwhile.
	GiveBack  string `json:"giveBack,omitempty"`
	LastError string `json:"lastError,omitempty"`
	Problem   string `json:"problem,omitempty"`
	// Holders are the sockets on the claimed ports now (none: free);
	// HoldersProblem says why they could not be read.
	Holders        []HeldDoc `json:"holders"`
	HoldersProblem string    `json:"holdersProblem,omitempty"`
}

// StatusText writes status for people. root: root reads it (it sees
// every unit the policy lets yield, not only those of the users shown);
// brokerSocket is where the broker was looked for.
func StatusText(w io.Writer, doc StatusDoc, root bool, brokerSocket string) {
	switch {
	case doc.PolicyUntrusted:
		fmt.Fprintf(w, "policy: %s: it cannot be trusted, so every claim stays as it is (reconcile gives nothing back, the broker does nothing) until root fixes it\n", doc.PolicyProblem)
	case doc.Policy == nil:
		fmt.Fprintf(w, "policy: %s\n", doc.PolicyProblem)
	default:
		fmt.Fprintf(w, "policy: %s, claims in %s\n", doc.Policy.Path, doc.Policy.ClaimsDir)
		var units []string
		for u := range doc.Policy.Yield {
			units = append(units, u)
		}
		sort.Strings(units)
		for _, u := range units {
			if root || slices.ContainsFunc(doc.Users, func(su StatusUser) bool { return slices.Contains(doc.Policy.Yield[u], su.User) }) {
				fmt.Fprintf(w, "  may yield: %s to %s\n", u, strings.Join(doc.Policy.Yield[u], ", "))
			}
		}
	}
	if doc.Policy != nil && doc.ClaimsIn != "" {
		fmt.Fprintf(w, "claims: still in %s, the claims directory served before, until portclaim-move-claims.service moves them to %s (`journalctl -u portclaim-move-claims` says why not)\n", doc.ClaimsIn, doc.Policy.ClaimsDir)
	}
	switch doc.BrokerState {
	case host.BrokerListening:
		fmt.Fprintf(w, "broker: listening at %s\n", brokerSocket)
	case host.BrokerStopped:
		fmt.Fprintf(w, "broker: not listening (%s is there, but portclaim.socket is stopped); users' resolve changes nothing\n", brokerSocket)
		fmt.Fprintf(w, "  see why: systemctl status portclaim.socket\n  start it, as root: sudo systemctl start portclaim.socket\n")
	default:
		fmt.Fprintf(w, "broker: not installed (no %s); users' resolve changes nothing\n", brokerSocket)
		fmt.Fprintf(w, "  enable portclaim's NixOS module, in configuration.nix: services.portclaim.enable = true;\n")
	}
	total := 0
	for _, su := range doc.Users {
		for _, c := range su.Claims {
			total++
			claimText(w, su.User, c)
		}
		if su.LastRun != nil {
			lr := su.LastRun
			by := ""
			if lr.By != "" {
				by = " (by " + lr.By + ")"
			}
			fmt.Fprintf(w, "last run of %s: portclaim %s%s, exit %d: %s (this outcome since %s)\n", su.User, lr.Command, by, lr.Exit, lr.Summary, lr.Time.Local().Format(time.RFC3339))
			for _, l := range lr.Lines {
				fmt.Fprintf(w, "  %s\n", l)
			}
		} else if su.LastRunProblem != "" {
			fmt.Fprintf(w, "last run of %s: %s\n", su.User, su.LastRunProblem)
		}
	}
	if total == 0 {
		fmt.Fprintln(w, "no claims")
	}
}

// claimText writes one claim of user: what it keeps down, how, and who
// holds its ports now.
func claimText(w io.Writer, user string, c StatusClaim) {
	if c.Problem != "" {
		fmt.Fprintf(w, "claim of %s on %s: %s (it keeps the unit down; root must repair or remove it)\n", user, c.Unit, c.Problem)
		return
	}
	state := "kept down by " + MethodText(c.Method)
	if !c.KeptDown {
		state = "not kept down (" + MethodText(c.Method) + ")"
	}
	if c.Releasing {
		state = "being released, the unit not back yet"
		if c.LastError != "" {
			state += ": " + c.LastError
		}
	}
	if c.GiveBack != "" && !c.Releasing {
		state += "; asked back, waiting: " + c.GiveBack + "; the next `portclaim release`, home-manager switch or boot gives it back once that is over"
	}
	with := ""
	if c.With != "" {
		with = ", stopped with " + c.With
	}
	fmt.Fprintf(w, "claim: %s yields to %s (service %s%s, since %s; before: %s)\n",
		c.Unit, user, c.Service, with, c.ClaimedAt.Local().Format(time.RFC3339), c.Prior)
	fmt.Fprintf(w, "  %s\n", state)
	for _, line := range holderLines(c) {
		fmt.Fprintf(w, "  %s\n", line)
	}
}

// holderLines say who holds each of a claim's ports now, a line each.
func holderLines(c StatusClaim) []string {
	var out []string
	for _, p := range c.Ports {
		if c.HoldersProblem != "" {
			out = append(out, fmt.Sprintf("%s: %s", p.PortProto(), c.HoldersProblem))
			continue
		}
		held := false
		for _, h := range c.Holders {
			if h.Port == p.Port && h.Protocol == string(p.Proto) {
				held = true
				out = append(out, fmt.Sprintf("%s: %s at %s", p.PortProto(), h.Says, h.Address))
			}
		}
		if !held {
			out = append(out, p.PortProto()+": free")
		}
	}
	return out
}

// StatusMetrics is the fleet view of what status read: the policy, the
// broker, each user's claims and last run. Each user's conflicts come
// from a check of their manifest, which the caller adds (Checked,
// Conflicts).
func StatusMetrics(doc StatusDoc, policyOK bool) Metrics {
	m := Metrics{PolicyOK: policyOK, PolicyUntrusted: doc.PolicyUntrusted, Broker: doc.Broker}
	for _, su := range doc.Users {
		um := UserMetrics{User: su.User, LastRun: su.LastRun}
		for _, c := range su.Claims {
			um.Claims = append(um.Claims, ClaimMetric{Unit: c.Unit, Method: c.Method, KeptDown: c.KeptDown,
				Releasing: c.Releasing, AskedBack: c.GiveBack != "", Unreadable: c.Problem != ""})
		}
		m.Users = append(m.Users, um)
	}
	return m
}

// ConflictMetrics are a plan's conflicts as the metrics count them.
func ConflictMetrics(items []plan.Item) []ConflictMetric {
	var out []ConflictMetric
	for _, it := range items {
		f := it.Finding
		out = append(out, ConflictMetric{Kind: string(f.Kind), Who: string(it.Remedy.Who), Port: f.Want.Port, Protocol: string(f.Want.Proto)})
	}
	return out
}
