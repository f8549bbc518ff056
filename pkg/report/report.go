// Package report renders a check for people (one line per claimed port,
// conflicts with their next step) and for programs (JSON; the schema is in
// the README and kept stable).
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/portclaim/portclaim/pkg/conflict"
	"github.com/portclaim/portclaim/pkg/holder"
	"github.com/portclaim/portclaim/pkg/inspect"
)

// Text writes the human report.
func Text(w io.Writer, source string, res inspect.Result) {
	fmt.Fprintf(w, "portclaim check: %s's claims from %s\n", res.UserName, source)
	for _, f := range res.Findings {
		port := fmt.Sprintf("%d/%s", f.Want.Port, f.Want.Proto)
		switch f.Kind {
		case conflict.Free:
			fmt.Fprintf(w, "  ok        %-10s %s: free for %s\n", port, f.Service, f.UserUnit)
		case conflict.Self:
			fmt.Fprintf(w, "  ok        %-10s %s: held by your %s on %s\n", port, f.Service, f.Unit, f.Socket.Endpoint)
		default:
			fmt.Fprintf(w, "  CONFLICT  %-10s %s: %s; %s wants %s [%s] — next: %s\n",
				port, f.Service, holding(f), userSide(f, res), f.Want, f.Kind, f.Next)
		}
	}
	for _, n := range res.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	for _, b := range res.Broken {
		fmt.Fprintf(w, "error: %s\n", b)
	}
	fmt.Fprintln(w, conflict.Summary(res.Findings))
}

// holding says who holds (or, latent, will hold) the port, and where.
func holding(f conflict.Finding) string {
	if f.Kind == conflict.Latent {
		return fmt.Sprintf("system %s is enabled and takes it at boot", f.Unit)
	}
	return fmt.Sprintf("%s holds %s", Who(f.Holder, f.Manager, f.Unit), f.Socket.Endpoint)
}

// Who names a holder: "system ollama.service (pid 70 ollama, confirmed)".
func Who(h holder.Holder, manager, unit string) string {
	if !h.Known() {
		return fmt.Sprintf("an unknown process of uid %d (%s)", h.UID, h.Why)
	}
	var b strings.Builder
	switch {
	case unit == "":
		b.WriteString("a process outside any unit")
	default:
		fmt.Fprintf(&b, "%s %s", manager, unit)
	}
	fmt.Fprintf(&b, " (pid %d %s, %s)", h.PID, h.Command, h.Confidence)
	return b.String()
}

func userSide(f conflict.Finding, res inspect.Result) string {
	s := fmt.Sprintf("user %s's %s", res.UserName, f.UserUnit)
	if u, ok := res.UserUnits[f.UserUnit]; ok && u.Exists() {
		s += " (" + u.ActiveState + ")"
	}
	return s
}

// JSON document types: the README documents them; change only additively.
type (
	Doc struct {
		User      string     `json:"user"`
		Manifest  string     `json:"manifest"`
		Conflicts []Conflict `json:"conflicts"`
		Ports     []Port     `json:"ports"`
		Notes     []string   `json:"notes"`
		Errors    []string   `json:"errors"`
		// DBusCalls counts method calls per manager ("system", "user"):
		// one each, however many units the manifest names.
		DBusCalls map[string]int `json:"dbusCalls"`
	}
	Conflict struct {
		Service    string  `json:"service"`
		Port       uint16  `json:"port"`
		Protocol   string  `json:"protocol"`
		Address    string  `json:"address"`
		UserUnit   string  `json:"userUnit"`
		Kind       string  `json:"kind"`
		HeldAt     string  `json:"heldAt,omitempty"`
		SystemUnit string  `json:"systemUnit,omitempty"`
		Holder     *Holder `json:"holder"`
		Next       string  `json:"next"`
	}
	Holder struct {
		Manager    string `json:"manager"`
		Unit       string `json:"unit"`
		PID        int    `json:"pid"`
		Command    string `json:"command"`
		UID        uint32 `json:"uid"`
		Confidence string `json:"confidence"`
		Why        string `json:"why,omitempty"`
	}
	Port struct {
		Service  string `json:"service"`
		Port     uint16 `json:"port"`
		Protocol string `json:"protocol"`
		Address  string `json:"address"`
		UserUnit string `json:"userUnit"`
		Status   string `json:"status"`
	}
)

// Document builds the JSON document.
func Document(source string, res inspect.Result) Doc {
	d := Doc{User: res.UserName, Manifest: source, Conflicts: []Conflict{}, Ports: []Port{},
		Notes: nonNil(res.Notes), Errors: nonNil(res.Broken), DBusCalls: res.DBusCalls}
	for _, f := range res.Findings {
		addr := ""
		if !f.Want.All() {
			addr = f.Want.Addr.String()
		}
		d.Ports = append(d.Ports, Port{Service: f.Service, Port: f.Want.Port, Protocol: string(f.Want.Proto),
			Address: addr, UserUnit: f.UserUnit, Status: string(f.Kind)})
		if !f.Kind.Conflict() {
			continue
		}
		c := Conflict{Service: f.Service, Port: f.Want.Port, Protocol: string(f.Want.Proto), Address: addr,
			UserUnit: f.UserUnit, Kind: string(f.Kind), SystemUnit: f.SystemUnit, Next: f.Next,
			Holder: &Holder{Manager: f.Manager, Unit: f.Unit, PID: f.Holder.PID, Command: f.Holder.Command,
				UID: f.Holder.UID, Confidence: string(f.Holder.Confidence), Why: f.Holder.Why}}
		if f.Socket != nil {
			c.HeldAt = f.Socket.Endpoint.HostString()
		}
		if f.Kind == conflict.Latent {
			c.Holder.Confidence = "" // nothing holds it yet
		}
		d.Conflicts = append(d.Conflicts, c)
	}
	return d
}

// JSON writes the JSON document.
func JSON(w io.Writer, source string, res inspect.Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(Document(source, res))
}

// WhoLine is one line of `portclaim who`.
func WhoLine(h inspect.Held) string {
	manager := "system"
	if h.Holder.Unit.User {
		manager = "user " + inspect.NameOf(h.Holder.Unit.UserUID)
	}
	return fmt.Sprintf("%s %s: %s", h.Socket.Proto, h.Socket.Endpoint, Who(h.Holder, manager, h.Holder.Unit.Name))
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
