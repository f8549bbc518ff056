package report

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/portclaim/portclaim/pkg/conflict"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/holder"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/plan"
	"github.com/portclaim/portclaim/pkg/protocol"
)

func result() Check {
	sock := &host.Socket{Endpoint: endpoint.Endpoint{Proto: endpoint.TCP, Addr: netip.MustParseAddr("127.0.0.1"), Port: 11434}}
	held := conflict.Finding{Service: "ollama", Want: endpoint.Endpoint{Proto: endpoint.TCP, Port: 11434}, UserUnit: "podman-local-ai-ollama.service",
		Kind: conflict.Resolvable, Socket: sock, Manager: "system", Unit: "ollama.service", SystemUnit: "ollama.service",
		Holder: holder.Holder{Unit: host.UnitRef{Name: "ollama.service"}, PID: 70, Command: "ollama", Confidence: holder.Confirmed}}
	return Check{
		User: "alice", Manifest: Manifest{Path: "m.json", Kind: ManifestGiven},
		Findings: []conflict.Finding{held,
			{Service: "qdrant", Want: endpoint.Endpoint{Proto: endpoint.TCP, Port: 6333}, UserUnit: "podman-local-ai-qdrant.service", Kind: conflict.Free}},
		Items: []plan.Item{{Finding: held, Remedy: plan.Remedy{Who: plan.ByResolve, Says: "the system policy lets ollama.service yield to you",
			Ways: []plan.Way{{Lines: []string{"portclaim resolve"}}}, Commands: []string{"portclaim resolve"}}}},
		UserUnits: map[string]host.Unit{"podman-local-ai-ollama.service": {LoadState: "loaded", ActiveState: "failed"}},
		Notes:     []string{"a note"},
		DBusCalls: map[string]int{"system": 1, "user": 1},
		NameOf:    func(uint32) string { return "alice" },
	}
}

// TestJSONSchema pins the documented field names (README "JSON").
func TestJSONSchema(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, Document(result())); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	c := doc["conflicts"].([]any)[0].(map[string]any)
	for k, want := range map[string]any{"service": "ollama", "port": 11434.0, "protocol": "tcp", "address": "", "userUnit": "podman-local-ai-ollama.service",
		"kind": "resolvable", "heldAt": "127.0.0.1", "systemUnit": "ollama.service",
		"next": "the system policy lets ollama.service yield to you; portclaim resolve"} {
		if c[k] != want {
			t.Errorf("conflicts[0].%s = %v, want %v", k, c[k], want)
		}
	}
	h := c["holder"].(map[string]any)
	for k, want := range map[string]any{"manager": "system", "unit": "ollama.service", "pid": 70.0, "command": "ollama", "uid": 0.0, "confidence": "confirmed"} {
		if h[k] != want {
			t.Errorf("holder.%s = %v, want %v", k, h[k], want)
		}
	}
	r := c["remedy"].(map[string]any)
	if r["who"] != "resolve" || len(r["commands"].([]any)) != 1 || r["nixos"] == nil || r["home"] == nil {
		t.Errorf("remedy %v", r)
	}
	if w := r["ways"].([]any)[0].(map[string]any); w["do"] != "" || w["lines"].([]any)[0] != "portclaim resolve" {
		t.Errorf("remedy.ways %v", r["ways"])
	}
	if m := doc["manifest"].(map[string]any); m["path"] != "m.json" || m["kind"] != "given" {
		t.Errorf("manifest %v", doc["manifest"])
	}
	ports := doc["ports"].([]any)
	if len(ports) != 2 || ports[1].(map[string]any)["status"] != "free" {
		t.Errorf("ports %v", ports)
	}
	for _, k := range []string{"user", "manifest", "notes", "errors", "dbusCalls"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("no %q", k)
		}
	}
}

func TestText(t *testing.T) {
	var b bytes.Buffer
	Text(&b, result())
	want := `portclaim check: alice's claims from m.json
  CONFLICT  11434/tcp  ollama [resolvable]
            system ollama.service (pid 70 ollama, confirmed) holds 127.0.0.1:11434
            your podman-local-ai-ollama.service (failed) wants *:11434
            fix: the system policy lets ollama.service yield to you
              portclaim resolve
  ok        6333/tcp   qdrant: free for podman-local-ai-qdrant.service
1 conflict (1 resolvable)
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	c := result()
	c.Errors = []string{"connecting to the system bus: no"}
	b.Reset()
	Text(&b, c)
	if !strings.Contains(b.String(), "1 conflict (1 resolvable) in what could be read; the view is incomplete") {
		t.Errorf("an incomplete view says so:\n%s", b.String())
	}
	// Root reads alice's report: hers, not "your".
	c.Root = true
	b.Reset()
	Text(&b, c)
	if !strings.Contains(b.String(), "alice's podman-local-ai-ollama.service (failed) wants") || strings.Contains(b.String(), "your") {
		t.Errorf("root's view:\n%s", b.String())
	}
}

// TestLabelsAndCountsAreWhoCanAct: [resolvable] and "resolvable" in the
// summary only where resolve acts now; the others by who can act.
func TestLabelsAndCountsAreWhoCanAct(t *testing.T) {
	c := result()
	admin := c.Items[0]
	admin.Remedy.Who = plan.ByAdmin
	you := c.Items[0]
	you.Remedy.Who = plan.ByYou
	c.Findings = []conflict.Finding{c.Items[0].Finding, admin.Finding, you.Finding}
	c.Items = []plan.Item{c.Items[0], admin, you}
	var b bytes.Buffer
	Text(&b, c)
	for _, want := range []string{"ollama [resolvable]\n", "ollama [admin]\n", "ollama [you]\n", "3 conflicts (1 resolvable, 1 for the administrator, 1 for you)\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("lacks %q:\n%s", want, b.String())
		}
	}
}

// TestFixLines: one way a line, the Nix line or command last, on a line
// of its own where it would run past Width; a way printed before is
// named, not repeated.
func TestFixLines(t *testing.T) {
	long := `services.podman.containers.local-ai-qdrant.ports = [ "6332:6333" "6335:6334" ];`
	r := plan.Remedy{Says: "the system policy does not let qdrant.service yield to you", Ways: []plan.Way{
		{Do: "let it yield", In: plan.InNixOS, Lines: []string{`services.portclaim.yield."qdrant.service".users = [ "alice" ];`}},
		{Do: "or as root, now", Lines: []string{"sudo portclaim resolve --user alice"}},
		{Do: "or move it from 6333/tcp and 6334/tcp to 6332 and 6335, which are free", In: plan.InHome, Lines: []string{long}},
	}}
	shown := map[string]string{}
	got := strings.Join(FixLines(r, 12, shown, "6333/tcp"), "\n")
	want := `fix: the system policy does not let qdrant.service yield to you
  let it yield, in configuration.nix:
    services.portclaim.yield."qdrant.service".users = [ "alice" ];
  or as root, now: sudo portclaim resolve --user alice
  or move it from 6333/tcp and 6334/tcp to 6332 and 6335, which are free, in home.nix:
    ` + long
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if again := FixLines(r, 12, shown, "6334/tcp"); len(again) != 1 || again[0] != "fix: as for 6333/tcp, above" {
		t.Errorf("the same fix again: %q", again)
	}
	other := r
	other.Says = "strategy report: portclaim changes nothing"
	again := FixLines(other, 12, shown, "6334/tcp")
	if last := again[len(again)-1]; last != "  or move it from 6333/tcp and 6334/tcp to 6332 and 6335, which are free (as for 6333/tcp, above)" {
		t.Errorf("the move printed before: %q", last)
	}
}

func TestOutcomeLines(t *testing.T) {
	lines := YieldLines("alice", protocol.YieldResult{PortsFree: true, Units: []protocol.UnitResult{
		{Unit: "ollama.service", Outcome: protocol.Stopped}, {Unit: "webui.service", Outcome: protocol.Stopped, With: "ollama.service"}}})
	want := "yielded  ollama.service to alice: stopped and claimed\nyielded  webui.service to alice (stopped with ollama.service, which it depends on): stopped and claimed"
	if got := strings.Join(lines, "\n"); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	refused := YieldLines("alice", protocol.YieldResult{Refused: &protocol.Refusal{Says: "no", NixOS: "services.portclaim.yield.\"x.service\".users = [ \"alice\" ];"}})
	if len(refused) != 2 || refused[0] != "refused: no" || !strings.HasPrefix(refused[1], "  let it yield, in configuration.nix: services.portclaim.yield") {
		t.Errorf("%q", refused)
	}
}

// TestWhoWithoutAProcess: a holder known by its unit alone is named with
// how sure that is, and no empty process.
func TestWhoWithoutAProcess(t *testing.T) {
	h := holder.Holder{Unit: host.UnitRef{Name: "ollama.socket"}, Confidence: holder.Probable}
	if got := Who(h, nil); got != "system ollama.socket (probable)" {
		t.Errorf("Who = %q", got)
	}
}
