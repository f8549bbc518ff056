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
	"github.com/portclaim/portclaim/pkg/yield"
)

func result() Check {
	sock := &host.Socket{Endpoint: endpoint.Endpoint{Proto: endpoint.TCP, Addr: netip.MustParseAddr("127.0.0.1"), Port: 11434}}
	held := conflict.Finding{Service: "ollama", Want: endpoint.Endpoint{Proto: endpoint.TCP, Port: 11434}, UserUnit: "podman-local-ai-ollama.service",
		Kind: conflict.Resolvable, Socket: sock, Manager: "system", Unit: "ollama.service", SystemUnit: "ollama.service",
		Holder: holder.Holder{Unit: host.UnitRef{Name: "ollama.service"}, PID: 70, Command: "ollama", Confidence: holder.Confirmed}}
	return Check{
		User: "alice", Source: "m.json",
		Findings: []conflict.Finding{held,
			{Service: "qdrant", Want: endpoint.Endpoint{Proto: endpoint.TCP, Port: 6333}, UserUnit: "podman-local-ai-qdrant.service", Kind: conflict.Free}},
		Items:     []plan.Item{{Finding: held, Remedy: plan.Remedy{Who: plan.ByResolve, Says: "`portclaim resolve` makes ollama.service yield to you", Commands: []string{"portclaim resolve"}}}},
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
		"next": "`portclaim resolve` makes ollama.service yield to you — `portclaim resolve`"} {
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
	out := b.String()
	for _, want := range []string{
		"portclaim check: alice's claims from m.json",
		"CONFLICT  11434/tcp  ollama: system ollama.service (pid 70 ollama, confirmed) holds 127.0.0.1:11434, which alice's podman-local-ai-ollama.service (failed) at *:11434 wants [resolvable]",
		"fix (resolve): `portclaim resolve` makes ollama.service yield to you",
		"ok        6333/tcp   qdrant: free for podman-local-ai-qdrant.service",
		"1 conflict (1 resolvable)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
	c := result()
	c.Errors = []string{"connecting to the system bus: no"}
	b.Reset()
	Text(&b, c)
	if !strings.Contains(b.String(), "1 conflict (1 resolvable) in what could be read; the view is incomplete") {
		t.Errorf("an incomplete view says so:\n%s", b.String())
	}
}

func TestOutcomeLines(t *testing.T) {
	ports := []endpoint.Endpoint{{Proto: endpoint.TCP, Port: 11434}}
	lines := YieldLines("alice", ports, yield.YieldResult{PortsFree: true, Units: []yield.UnitResult{
		{Unit: "ollama.service", Outcome: yield.Stopped}, {Unit: "webui.service", Outcome: yield.Stopped, With: "ollama.service"}}})
	want := "yielded  ollama.service to alice: stopped and claimed\nyielded  webui.service to alice (stopped with ollama.service, which it depends on): stopped and claimed\n11434/tcp free for alice"
	if got := strings.Join(lines, "\n"); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	refused := YieldLines("alice", ports, yield.YieldResult{Refused: &yield.Refusal{Says: "no", NixOS: "services.portclaim.yield.\"x.service\".users = [ \"alice\" ];"}})
	if !strings.HasPrefix(refused[0], "refused: no — configuration.nix: services.portclaim.yield") {
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
