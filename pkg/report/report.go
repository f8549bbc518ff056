// Package report renders what portclaim saw and did: for people (a line
// per claimed port, each conflict with who can fix it and how) and for
// programs (JSON whose schema the README documents; fields are only ever
// added). It renders result types of its own, which the command fills.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/portclaim/portclaim/pkg/conflict"
	"github.com/portclaim/portclaim/pkg/holder"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/plan"
)

// Check is one check's result.
type Check struct {
	User   string
	Source string // where the manifest came from
	// Findings are every claimed port's verdict; Items the conflicts
	// among them with their remedies, in the same order.
	Findings  []conflict.Finding
	Items     []plan.Item
	UserUnits map[string]host.Unit
	// Notes explain a partial view that is still useful; Errors what made
	// it unusable.
	Notes, Errors []string
	DBusCalls     map[string]int
	NameOf        func(uint32) string
}

// Text writes the check for people.
func Text(w io.Writer, c Check) {
	fmt.Fprintf(w, "portclaim check: %s's claims from %s\n", c.User, c.Source)
	items := map[int]plan.Item{}
	i := 0
	for n, f := range c.Findings {
		if f.Kind.Conflict() {
			items[n] = c.Items[i]
			i++
		}
	}
	for n, f := range c.Findings {
		port := f.Want.PortProto()
		switch f.Kind {
		case conflict.Free:
			fmt.Fprintf(w, "  ok        %-10s %s: free for %s\n", port, f.Service, f.UserUnit)
		case conflict.Self:
			fmt.Fprintf(w, "  ok        %-10s %s: held by your %s at %s\n", port, f.Service, f.Unit, f.Socket.Endpoint)
		default:
			fmt.Fprintf(w, "  CONFLICT  %-10s %s: %s, which %s wants [%s]\n", port, f.Service, Holding(f, c.NameOf), userSide(c, f), f.Kind)
			fmt.Fprintf(w, "            fix (%s): %s\n", items[n].Remedy.Who, items[n].Remedy.Text())
		}
	}
	summary := conflict.Summary(c.Findings)
	if len(c.Errors) > 0 {
		summary += " in what could be read; the view is incomplete (see the errors)"
	}
	fmt.Fprintln(w, summary)
}

// Holding says who holds (or, latent, will hold) the port, and where.
func Holding(f conflict.Finding, nameOf func(uint32) string) string {
	if f.Kind == conflict.Latent {
		return fmt.Sprintf("system %s is enabled and takes it at boot", f.Unit)
	}
	return fmt.Sprintf("%s holds %s", Who(f.Holder, nameOf), f.Socket.Endpoint)
}

// Who names a holder with how sure that is: "system ollama.service (pid
// 70 ollama, confirmed)".
func Who(h holder.Holder, nameOf func(uint32) string) string {
	if !h.Known() {
		return fmt.Sprintf("an unknown process of uid %d (%s)", h.UID, h.Why)
	}
	d := h.Describe(nameOf)
	if strings.HasSuffix(d, ")") {
		return strings.TrimSuffix(d, ")") + ", " + string(h.Confidence) + ")"
	}
	return d + " (" + string(h.Confidence) + ")"
}

func userSide(c Check, f conflict.Finding) string {
	s := fmt.Sprintf("%s's %s", c.User, f.UserUnit)
	if u, ok := c.UserUnits[f.UserUnit]; ok && u.Exists() {
		s += " (" + u.ActiveState + ")"
	}
	return s + " at " + f.Want.String()
}

// JSON document types: the README documents them; change only additively.
type (
	CheckDoc struct {
		User      string     `json:"user"`
		Manifest  string     `json:"manifest"`
		Conflicts []Conflict `json:"conflicts"`
		Ports     []Port     `json:"ports"`
		Notes     []string   `json:"notes"`
		Errors    []string   `json:"errors"`
		// DBusCalls counts method calls per manager ("system", "user"):
		// one ListUnitsByPatterns each, however many units the manifest
		// names; the system manager a second, ListUnitFilesByPatterns,
		// when a named unit is stopped and may start at boot.
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
		Remedy     Remedy  `json:"remedy"`
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
	Remedy struct {
		Who      string   `json:"who"`
		Says     string   `json:"says"`
		NixOS    []string `json:"nixos"`
		Home     []string `json:"home"`
		Commands []string `json:"commands"`
		MovePort uint16   `json:"movePort,omitempty"`
		MoveLine string   `json:"moveLine,omitempty"`
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

// Document builds the JSON document of a check.
func Document(c Check) CheckDoc {
	d := CheckDoc{User: c.User, Manifest: c.Source, Conflicts: []Conflict{}, Ports: []Port{},
		Notes: nonNil(c.Notes), Errors: nonNil(c.Errors), DBusCalls: c.DBusCalls}
	if d.DBusCalls == nil {
		d.DBusCalls = map[string]int{}
	}
	for _, f := range c.Findings {
		d.Ports = append(d.Ports, Port{Service: f.Service, Port: f.Want.Port, Protocol: string(f.Want.Proto),
			Address: address(f), UserUnit: f.UserUnit, Status: string(f.Kind)})
	}
	for _, it := range c.Items {
		d.Conflicts = append(d.Conflicts, ConflictDoc(it))
	}
	return d
}

// ConflictDoc is one conflict and its remedy as the JSON documents
// write it.
func ConflictDoc(it plan.Item) Conflict {
	f, r := it.Finding, it.Remedy
	h := HolderDoc(f.Manager, f.Unit, f.Holder)
	cf := Conflict{Service: f.Service, Port: f.Want.Port, Protocol: string(f.Want.Proto), Address: address(f),
		UserUnit: f.UserUnit, Kind: string(f.Kind), SystemUnit: f.SystemUnit, Next: r.Text(), Holder: &h,
		Remedy: Remedy{Who: string(r.Who), Says: r.Says, NixOS: nonNil(r.NixOS), Home: nonNil(r.Home),
			Commands: nonNil(r.Commands), MovePort: r.MovePort, MoveLine: r.MoveLine}}
	if f.Socket != nil {
		cf.HeldAt = f.Socket.Endpoint.HostString()
	}
	if f.Kind == conflict.Latent {
		cf.Holder.Confidence = "" // nothing holds it yet
	}
	return cf
}

// HolderDoc is a holder as the JSON documents write it: manager
// ("system", "user alice") and unit as the caller names them.
func HolderDoc(manager, unit string, h holder.Holder) Holder {
	return Holder{Manager: manager, Unit: unit, PID: h.PID, Command: h.Command, UID: h.UID, Confidence: string(h.Confidence), Why: h.Why}
}

func address(f conflict.Finding) string {
	if f.Want.All() {
		return ""
	}
	return f.Want.Addr.String()
}

// WriteJSON writes any document indented, as every --json does.
func WriteJSON(w io.Writer, doc any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
