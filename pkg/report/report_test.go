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
	"github.com/portclaim/portclaim/pkg/inspect"
)

func result() inspect.Result {
	sock := &host.Socket{Endpoint: endpoint.Endpoint{Proto: endpoint.TCP, Addr: netip.MustParseAddr("127.0.0.1"), Port: 11434}}
	return inspect.Result{
		UserName: "alice",
		Findings: []conflict.Finding{
			{Service: "ollama", Want: endpoint.Endpoint{Proto: endpoint.TCP, Port: 11434}, UserUnit: "podman-local-ai-ollama.service",
				Kind: conflict.Resolvable, Socket: sock, Manager: "system", Unit: "ollama.service", SystemUnit: "ollama.service",
				Holder: holder.Holder{Unit: host.UnitRef{Name: "ollama.service"}, PID: 70, Command: "ollama", Confidence: holder.Confirmed},
				Next:   "stop it"},
			{Service: "qdrant", Want: endpoint.Endpoint{Proto: endpoint.TCP, Port: 6333}, UserUnit: "podman-local-ai-qdrant.service", Kind: conflict.Free},
		},
		UserUnits: map[string]host.Unit{"podman-local-ai-ollama.service": {LoadState: "loaded", ActiveState: "failed"}},
		Notes:     []string{"a note"},
		DBusCalls: map[string]int{"system": 1, "user": 1},
	}
}

// TestJSONSchema pins the documented field names (README "JSON").
func TestJSONSchema(t *testing.T) {
	var b bytes.Buffer
	if err := JSON(&b, "m.json", result()); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	c := doc["conflicts"].([]any)[0].(map[string]any)
	h := c["holder"].(map[string]any)
	for k, want := range map[string]any{"service": "ollama", "port": 11434.0, "protocol": "tcp", "address": "", "userUnit": "podman-local-ai-ollama.service",
		"kind": "resolvable", "heldAt": "127.0.0.1", "systemUnit": "ollama.service", "next": "stop it"} {
		if c[k] != want {
			t.Errorf("conflicts[0].%s = %v, want %v", k, c[k], want)
		}
	}
	for k, want := range map[string]any{"manager": "system", "unit": "ollama.service", "pid": 70.0, "command": "ollama", "confidence": "confirmed"} {
		if h[k] != want {
			t.Errorf("holder.%s = %v, want %v", k, h[k], want)
		}
	}
	ports := doc["ports"].([]any)
	if len(ports) != 2 || ports[1].(map[string]any)["status"] != "free" {
		t.Errorf("ports = %v", ports)
	}
	if doc["errors"] == nil || len(doc["notes"].([]any)) != 1 || doc["dbusCalls"].(map[string]any)["system"] != 1.0 {
		t.Errorf("notes/errors/dbusCalls = %v %v %v", doc["notes"], doc["errors"], doc["dbusCalls"])
	}
}

// TestTextOneLinePerConflict: the human report puts the port, both units
// and managers, the addresses and the next step on one line.
func TestTextOneLinePerConflict(t *testing.T) {
	var b bytes.Buffer
	Text(&b, "m.json", result())
	out := b.String()
	var line string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "CONFLICT") {
			line = l
		}
	}
	for _, want := range []string{"11434/tcp", "ollama", "system ollama.service (pid 70 ollama, confirmed)", "holds 127.0.0.1:11434",
		"user alice's podman-local-ai-ollama.service (failed)", "wants *:11434", "[resolvable]", "next: stop it"} {
		if !strings.Contains(line, want) {
			t.Errorf("conflict line lacks %q:\n%s", want, line)
		}
	}
	if !strings.Contains(out, "ok        6333/tcp   qdrant: free") || !strings.Contains(out, "note: a note") || !strings.Contains(out, "1 conflict (1 resolvable)") {
		t.Errorf("report:\n%s", out)
	}
}
