package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/manifest"
	"github.com/portclaim/portclaim/pkg/plan"
)

// keysOf is the JSON object doc renders to, key by key, in order.
func keysOf(t *testing.T, doc any) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteJSON(&b, doc); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(&b)
	var keys []string
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			continue
		case json.Delim('}'), json.Delim(']'):
			depth--
			continue
		}
		if s, ok := tok.(string); ok && depth == 1 && dec.More() {
			keys = append(keys, s)
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				t.Fatal(err)
			}
		}
	}
	return strings.Join(keys, " ")
}

// TestCommandDocumentsKeepTheirShape pins the top-level fields of the
// documents that moved here from the command, in their order (README
// "JSON": fields are only ever added).
func TestCommandDocumentsKeepTheirShape(t *testing.T) {
	at := time.Unix(0, 0)
	for name, c := range map[string]struct {
		doc  any
		want string
	}{
		"resolve": {ResolveDoc{}, "user manifest dryRun yields userUnits left notes errors"},
		"release": {ReleaseDoc{}, "user manifest dryRun release userUnits notes errors"},
		"status": {StatusDoc{Policy: &StatusPolicy{}, PolicyProblem: "p", PolicyUntrusted: true, ClaimsIn: "/x"},
			"policy policyProblem policyUntrusted claimsIn broker brokerState users"},
		"status user": {StatusUser{LastRunProblem: "p"}, "user claims lastRunProblem"},
		"status claim": {StatusClaim{Service: "s", ClaimedAt: &at, Method: "condition", Prior: "active", With: "w", Releasing: true,
			GiveBack: "g", LastError: "e", Problem: "p", HoldersProblem: "h"},
			"unit service ports claimedAt method keptDown prior with releasing giveBack lastError problem holders holdersProblem"},
		"who":          {WhoDoc{Protocol: "tcp"}, "port protocol sockets"},
		"who socket":   {WhoSocket{}, "protocol address holder says"},
		"validate":     {ValidateDoc{Version: 2, Strategy: "report", More: 1}, "file valid version strategy services ports notes problems more"},
		"validate bad": {ValidateProblem{}, "path message"},
	} {
		if got := keysOf(t, c.doc); got != c.want {
			t.Errorf("%s: %q, want %q", name, got, c.want)
		}
	}
}

// TestValidateDocs: a valid manifest is counted; an invalid one lists
// each problem with its JSON path, or the error alone.
func TestValidateDocs(t *testing.T) {
	m := manifest.Manifest{Version: 2, Strategy: "disable-system", Services: []manifest.Service{
		{Ports: []endpoint.Endpoint{{Port: 1}, {Port: 2}}}, {Ports: []endpoint.Endpoint{{Port: 3}}}}}
	if d := ValidDoc("m.json", m); !d.Valid || d.Services != 2 || d.Ports != 3 || d.Notes == nil || d.Problems == nil {
		t.Errorf("%+v", d)
	}
	_, err := manifest.Parse("bad.json", []byte(`{"version":2,"strategy":"mask","services":[]}`))
	if d := InvalidDoc("bad.json", err); d.Valid || len(d.Problems) != 1 || d.Problems[0].Path != "strategy" {
		t.Errorf("%+v", d)
	}
	if d := InvalidDoc("x", errors.New("unreadable")); len(d.Problems) != 1 || d.Problems[0].Path != "" || d.Problems[0].Message != "unreadable" {
		t.Errorf("%+v", d)
	}
}

// TestYieldQuestionNamesWhatHoldsAndWhatWants: the prompt before a yield
// says what it stops, what holds the ports now, and which of the user's
// units wants them, each once.
func TestYieldQuestionNamesWhatHoldsAndWhatWants(t *testing.T) {
	c := result()
	c.Items = append(c.Items, c.Items[0])
	y := plan.Yield{Service: "ollama", Units: []string{"ollama.socket", "ollama.service"}, Ports: []endpoint.Endpoint{{Proto: endpoint.TCP, Port: 11434}}}
	want := "Stop ollama.socket and ollama.service (" + Who(c.Items[0].Finding.Holder, c.NameOf) +
		" on 127.0.0.1:11434) and keep it down for alice, so that podman-local-ai-ollama.service can have 11434/tcp?"
	if got := c.YieldQuestion(y); got != want {
		t.Errorf("%q\nwant %q", got, want)
	}
}

// TestStatusTextReadsOnlyTheDocument: what status prints comes from its
// document alone; a user sees the units that may yield to them, root
// every one.
func TestStatusTextReadsOnlyTheDocument(t *testing.T) {
	doc := StatusDoc{Policy: &StatusPolicy{Path: "/etc/portclaim/policy.json", ClaimsDir: "/c", Yield: map[string][]string{"a.service": {"alice"}, "b.service": {"bob"}}},
		BrokerState: host.BrokerListening, Users: []StatusUser{{User: "alice", Claims: []StatusClaim{{Unit: "a.service", Service: "a", ClaimedAt: &time.Time{},
			Method: "condition", KeptDown: true, Ports: []endpoint.Endpoint{{Proto: endpoint.TCP, Port: 80}}}}}}}
	for _, c := range []struct {
		root bool
		want []string
		not  string
	}{
		{false, []string{"  may yield: a.service to alice\n", "broker: listening at /run/b.sock\n", "claim: a.service yields to alice", "  80/tcp: free\n"}, "b.service"},
		{true, []string{"  may yield: b.service to bob\n"}, "no claims"},
	} {
		var b bytes.Buffer
		StatusText(&b, doc, c.root, "/run/b.sock")
		for _, w := range c.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("root %v: no %q in\n%s", c.root, w, b.String())
			}
		}
		if strings.Contains(b.String(), c.not) {
			t.Errorf("root %v: %q in\n%s", c.root, c.not, b.String())
		}
	}
}
