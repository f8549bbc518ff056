package report

import (
	"bytes"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/portclaim/portclaim/pkg/lastrun"
)

// TestPrometheusParses reads the output with Prometheus' own text-format
// parser, as node_exporter's textfile collector does, and checks the
// values a dashboard or an alert would read.
func TestPrometheusParses(t *testing.T) {
	m := Metrics{PolicyOK: true, Broker: true, Users: []UserMetrics{
		{User: "alice", Checked: true,
			Claims: []ClaimMetric{{Unit: "ollama.service", Method: "condition", KeptDown: true}, {Unit: "web.service", Releasing: true}},
			Conflicts: []ConflictMetric{{Kind: "resolvable", Who: "resolvable", Port: 6333, Protocol: "tcp"}, {Kind: "resolvable", Who: "resolvable", Port: 6333, Protocol: "tcp"},
				{Kind: "resolvable", Who: "admin", Port: 6334, Protocol: "tcp"}, {Kind: "other-user", Who: "other-user", Port: 8080, Protocol: "tcp"}},
			LastRun: &lastrun.Record{Command: "resolve", Time: time.Unix(1700000000, 0), Exit: 1, Conflicts: 3}},
		{User: `we"ird\name`, Claims: []ClaimMetric{{Unit: "x.service", Unreadable: true}}},
	}}
	var b bytes.Buffer
	if err := Prometheus(&b, m); err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatalf("Prometheus' parser refuses the output: %v\n%s", err, b.String())
	}
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		f, ok := fams[name]
		if !ok {
			t.Fatalf("no family %s in\n%s", name, b.String())
		}
	next:
		for _, mt := range f.Metric {
			// Every label asked for is there, with its value.
			matched := 0
			for _, l := range mt.Label {
				if want, ok := labels[l.GetName()]; ok {
					if want != l.GetValue() {
						continue next
					}
					matched++
				}
			}
			if matched == len(labels) {
				return mt.GetGauge().GetValue()
			}
		}
		t.Fatalf("no %s%v in\n%s", name, labels, b.String())
		return 0
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"portclaim_policy_ok", nil, 1},
		{"portclaim_policy_untrusted", nil, 0},
		{"portclaim_claims", map[string]string{"user": "alice", "unit": "ollama.service", "method": "condition"}, 1},
		{"portclaim_unit_kept_down", map[string]string{"unit": "ollama.service"}, 1},
		{"portclaim_unit_kept_down", map[string]string{"unit": "x.service"}, 1},
		{"portclaim_release_pending", map[string]string{"unit": "web.service"}, 1},
		{"portclaim_conflicts", map[string]string{"user": "alice", "kind": "resolvable", "who": "resolvable", "port": "6333"}, 2},
		// Who can fix it is the plan's word, not the kind's: a unit the
		// policy does not let yield is the administrator's.
		{"portclaim_conflicts", map[string]string{"user": "alice", "kind": "resolvable", "who": "admin", "port": "6334"}, 1},
		{"portclaim_conflicts", map[string]string{"kind": "other-user", "port": "8080"}, 1},
		{"portclaim_last_run_exit_code", map[string]string{"user": "alice", "command": "resolve"}, 1},
		{"portclaim_last_run_timestamp_seconds", map[string]string{"user": "alice"}, 1700000000},
		{"portclaim_records_unreadable", map[string]string{"user": `we"ird\name`}, 1},
		{"portclaim_checked", map[string]string{"user": `we"ird\name`}, 0},
	}
	for _, c := range checks {
		if got := value(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for name, f := range fams {
		if f.GetType().String() != "GAUGE" || f.GetHelp() == "" {
			t.Errorf("%s: type %s, help %q", name, f.GetType(), f.GetHelp())
		}
	}
}
