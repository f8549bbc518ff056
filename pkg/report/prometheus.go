package report

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/portclaim/portclaim/pkg/lastrun"
)

// Metrics is the fleet view of one machine: what `portclaim status
// --format prometheus` writes for node_exporter's textfile collector.
type Metrics struct {
	PolicyOK bool // a trusted policy is installed
	// PolicyUntrusted: a policy is there that cannot be believed; the
	// claims stand, and reconcile fails, until root fixes it.
	PolicyUntrusted bool
	Broker          bool // the broker's socket listens
	Users           []UserMetrics
}

// UserMetrics is one user's share of the view.
type UserMetrics struct {
	User   string
	Claims []ClaimMetric
	// Checked: the user's manifest was read and checked; Conflicts holds
	// what that check found.
	Checked   bool
	Conflicts []ConflictMetric
	LastRun   *lastrun.Record
}

// ClaimMetric is one claim record.
type ClaimMetric struct {
	Unit, Method        string
	KeptDown, Releasing bool
	// AskedBack: a release asked for and deferred; the claim still
	// keeps the unit down.
	AskedBack  bool
	Unreadable bool
}

// ConflictMetric is one conflict on a claimed port.
type ConflictMetric struct {
	Kind string
	// Who can fix it (plan's classification: "resolve" where `portclaim
	// resolve` acts now).
	Who      string
	Port     uint16
	Protocol string
}

// family is one metric family being written.
type family struct {
	name, help, typ string
	samples         []string
}

func (f *family) add(labels [][2]string, value float64) {
	var b strings.Builder
	b.WriteString(f.name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s=\"%s\"", l[0], escapeLabel(l[1]))
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(strconv.FormatFloat(value, 'g', -1, 64))
	f.samples = append(f.samples, b.String())
}

// escapeLabel escapes a label value as the text format requires.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Prometheus writes m in Prometheus' text exposition format.
func Prometheus(w io.Writer, m Metrics) error {
	gauge := func(name, help string) *family { return &family{name: name, help: help, typ: "gauge"} }
	policyOK := gauge("portclaim_policy_ok", "Whether a trusted portclaim policy is installed (1) or not (0).")
	untrusted := gauge("portclaim_policy_untrusted", "Whether a policy is installed that cannot be trusted (1): every claim is kept until root fixes it.")
	broker := gauge("portclaim_broker_listening", "Whether portclaim's broker socket listens (1) or not (0).")
	claims := gauge("portclaim_claims", "Claim records, by user, unit and what keeps the unit down.")
	keptDown := gauge("portclaim_unit_kept_down", "Whether a claim keeps the unit down now (1), by unit.")
	pending := gauge("portclaim_release_pending", "Releases under way: the claim was given back, or asked back and deferred, but the unit is not back yet.")
	unreadable := gauge("portclaim_records_unreadable", "Claim records portclaim cannot read, by user; each keeps its unit down until root repairs it.")
	checked := gauge("portclaim_checked", "Whether the user's manifest was read and checked (1) or not (0).")
	conflicts := gauge("portclaim_conflicts", "Conflicts on claimed ports, by user, kind, who can fix them (resolve: portclaim resolve, now), port and protocol.")
	lastTime := gauge("portclaim_last_run_timestamp_seconds", "When the user's last resolve or release ran.")
	lastExit := gauge("portclaim_last_run_exit_code", "The exit code of the user's last resolve or release.")
	lastLeft := gauge("portclaim_last_run_conflicts", "Conflicts the user's last resolve or release left.")

	policyOK.add(nil, bool01(m.PolicyOK))
	untrusted.add(nil, bool01(m.PolicyUntrusted))
	broker.add(nil, bool01(m.Broker))
	down := map[string]bool{}
	for _, u := range m.Users {
		bad := 0
		for _, c := range u.Claims {
			switch {
			case c.Unreadable:
				bad++
				down[c.Unit] = true
			case c.Releasing:
				pending.add([][2]string{{"user", u.User}, {"unit", c.Unit}}, 1)
			default:
				claims.add([][2]string{{"user", u.User}, {"unit", c.Unit}, {"method", c.Method}}, 1)
				down[c.Unit] = down[c.Unit] || c.KeptDown
				if c.AskedBack {
					pending.add([][2]string{{"user", u.User}, {"unit", c.Unit}}, 1)
				}
			}
		}
		unreadable.add([][2]string{{"user", u.User}}, float64(bad))
		checked.add([][2]string{{"user", u.User}}, bool01(u.Checked))
		count := map[ConflictMetric]int{}
		for _, c := range u.Conflicts {
			count[c]++
		}
		keys := make([]ConflictMetric, 0, len(count))
		for c := range count {
			keys = append(keys, c)
		}
		sort.Slice(keys, func(i, j int) bool {
			if keys[i].Port != keys[j].Port {
				return keys[i].Port < keys[j].Port
			}
			return keys[i].Kind+keys[i].Protocol+keys[i].Who < keys[j].Kind+keys[j].Protocol+keys[j].Who
		})
		for _, c := range keys {
			conflicts.add([][2]string{{"user", u.User}, {"kind", c.Kind}, {"who", c.Who}, {"port", strconv.Itoa(int(c.Port))}, {"protocol", c.Protocol}}, float64(count[c]))
		}
		if r := u.LastRun; r != nil {
			l := [][2]string{{"user", u.User}, {"command", r.Command}}
			lastTime.add(l, float64(r.Time.Unix()))
			lastExit.add(l, float64(r.Exit))
			lastLeft.add(l, float64(r.Conflicts))
		}
	}
	units := make([]string, 0, len(down))
	for u := range down {
		units = append(units, u)
	}
	sort.Strings(units)
	for _, u := range units {
		keptDown.add([][2]string{{"unit", u}}, bool01(down[u]))
	}
	for _, f := range []*family{policyOK, untrusted, broker, claims, keptDown, pending, unreadable, checked, conflicts, lastTime, lastExit, lastLeft} {
		if len(f.samples) == 0 {
			continue
		}
		if _, err := fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s\n", f.name, f.help, f.name, f.typ, strings.Join(f.samples, "\n")); err != nil {
			return err
		}
	}
	return nil
}
