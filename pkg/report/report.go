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
	User string
	// Root: root reads it, for User (the report says "alice's", not
	// "your").
	Root     bool
	Manifest Manifest // where the claims came from
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

// Width is the column portclaim keeps its lines within where the content
// allows: a Nix line or a command is never broken, it gets a line of its
// own instead.
const Width = 100

// checkIndent is where a conflict's lines begin in check's report, under
// its port.
const checkIndent = "            "

// Text writes the check for people: a line per claimed port; under each
// conflict, what holds it, what wants it, and the fix.
func Text(w io.Writer, c Check) {
	fmt.Fprintf(w, "portclaim check: %s's claims from %s\n", c.User, c.Manifest)
	items := c.itemOf()
	shown := map[string]string{}
	for n, f := range c.Findings {
		port := f.Want.PortProto()
		switch f.Kind {
		case conflict.Free:
			fmt.Fprintf(w, "  ok        %-10s %s: free for %s\n", port, f.Service, f.UserUnit)
		case conflict.Self:
			fmt.Fprintf(w, "  ok        %-10s %s: held by %s %s at %s\n", port, f.Service, c.Whose(), f.Unit, f.Socket.Endpoint)
		default:
			it := items[n]
			fmt.Fprintf(w, "  CONFLICT  %-10s %s [%s]\n", port, f.Service, Label(it.Remedy.Who))
			for _, l := range c.ConflictLines(it, len(checkIndent), shown) {
				fmt.Fprintf(w, "%s%s\n", checkIndent, l)
			}
		}
	}
	fmt.Fprintln(w, Summary(c))
}

// itemOf maps each conflicting finding to its item.
func (c Check) itemOf() map[int]plan.Item {
	items := map[int]plan.Item{}
	i := 0
	for n, f := range c.Findings {
		if f.Kind.Conflict() && i < len(c.Items) {
			items[n] = c.Items[i]
			i++
		}
	}
	return items
}

// Whose is how the report names the user's own: "your", or for root
// "alice's".
func (c Check) Whose() string {
	if c.Root {
		return c.User + "'s"
	}
	return "your"
}

// Label is a conflict's tag: who can fix it, and "resolvable" only where
// `portclaim resolve`, run now, does.
func Label(who plan.Who) string {
	if who == plan.ByResolve {
		return "resolvable"
	}
	return string(who)
}

// ConflictLines are a conflict's lines under its heading: what holds the
// port, what wants it, and the fix (FixLines), for lines that begin at
// column indent. shown carries the fixes and ways already printed in
// full.
func (c Check) ConflictLines(it plan.Item, indent int, shown map[string]string) []string {
	f := it.Finding
	lines := []string{Holding(f, c.NameOf)}
	if f.Kind != conflict.Latent && !f.Holder.Known() && f.Holder.Why != "" {
		lines = append(lines, "  ("+f.Holder.Why+")")
	}
	lines = append(lines, c.userSide(f))
	return append(lines, FixLines(it.Remedy, indent, shown, f.Want.PortProto())...)
}

// FixLines are a remedy as people read it: "fix: " and why, then each
// way on its own line, what to do first and its Nix line or command
// last; a line that would run past Width gets a line of its own. shown
// (nil: none) carries what was printed in full before, and where: a fix
// given before in full (another port of the same service) is named, not
// repeated, and so is a way (a move that frees two ports).
func FixLines(r plan.Remedy, indent int, shown map[string]string, where string) []string {
	whole := r.Says
	for _, w := range r.Ways {
		whole += "\x00" + w.Text()
	}
	if at, ok := shown[whole]; ok && shown != nil {
		return []string{"fix: as for " + at + ", above"}
	}
	out := []string{"fix: " + r.Says}
	for _, w := range r.Ways {
		head := w.Do
		if w.In != "" {
			head += ", in " + w.In
		}
		key := w.Text()
		switch {
		case len(w.Lines) == 0:
			out = append(out, "  "+head)
		case shown[key] != "":
			out = append(out, "  "+w.Do+" (as for "+shown[key]+", above)")
		case head == "":
			for _, l := range w.Lines {
				out = append(out, "  "+l)
			}
		case len(w.Lines) == 1 && indent+2+len(head)+2+len(w.Lines[0]) <= Width:
			out = append(out, "  "+head+": "+w.Lines[0])
		default:
			out = append(out, "  "+head+":")
			for _, l := range w.Lines {
				out = append(out, "    "+l)
			}
		}
		if shown != nil && len(w.Lines) > 0 && shown[key] == "" {
			shown[key] = where
		}
	}
	if shown != nil {
		shown[whole] = where
	}
	return out
}

// Summary counts the conflicts by who can fix them, from the plan's one
// classification: "2 conflicts (1 resolvable, 1 for the administrator)".
func Summary(c Check) string {
	n := len(c.Items)
	var s string
	if n == 0 {
		s = "no conflicts"
	} else {
		count := map[plan.Who]int{}
		for _, it := range c.Items {
			count[it.Remedy.Who]++
		}
		var parts []string
		for _, who := range plan.Whos {
			if count[who] > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", count[who], c.forWhom(who)))
			}
		}
		noun := "conflicts"
		if n == 1 {
			noun = "conflict"
		}
		s = fmt.Sprintf("%d %s (%s)", n, noun, strings.Join(parts, ", "))
	}
	if len(c.Errors) > 0 {
		s += " in what could be read; the view is incomplete (see the errors)"
	}
	return s
}

func (c Check) forWhom(who plan.Who) string {
	switch who {
	case plan.ByResolve:
		return "resolvable"
	case plan.ByAdmin:
		return "for the administrator"
	case plan.ByRoot:
		return "for root"
	case plan.ByYou:
		if c.Root {
			return "for " + c.User
		}
		return "for you"
	}
	return "for other users"
}

// Holding says who holds (or, latent, will hold) the port, and where.
func Holding(f conflict.Finding, nameOf func(uint32) string) string {
	if f.Kind == conflict.Latent {
		return fmt.Sprintf("system %s is stopped but enabled: it takes %s at boot", f.Unit, f.Want.PortProto())
	}
	if !f.Holder.Known() {
		return fmt.Sprintf("an unknown process of uid %d holds %s", f.Holder.UID, f.Socket.Endpoint)
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

func (c Check) userSide(f conflict.Finding) string {
	s := c.Whose() + " " + f.UserUnit
	if u, ok := c.UserUnits[f.UserUnit]; ok && u.Exists() {
		s += " (" + u.ActiveState + ")"
	}
	return s + " wants " + f.Want.String()
}

// JSON document types: the README documents them; change only additively.
type (
	CheckDoc struct {
		User      string     `json:"user"`
		Manifest  Manifest   `json:"manifest"`
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
		Ways     []Way    `json:"ways"`
		NixOS    []string `json:"nixos"`
		Home     []string `json:"home"`
		Commands []string `json:"commands"`
		MovePort uint16   `json:"movePort,omitempty"`
		MoveLine string   `json:"moveLine,omitempty"`
	}
	// Way is one way to fix a conflict: what to do, in which file ("" for
	// commands), and the lines to add or run.
	Way struct {
		Do    string   `json:"do"`
		In    string   `json:"in,omitempty"`
		Lines []string `json:"lines"`
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
	d := CheckDoc{User: c.User, Manifest: c.Manifest, Conflicts: []Conflict{}, Ports: []Port{},
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
		Remedy: Remedy{Who: string(r.Who), Says: r.Says, Ways: []Way{}, NixOS: nonNil(r.NixOS), Home: nonNil(r.Home),
			Commands: nonNil(r.Commands), MovePort: r.MovePort, MoveLine: r.MoveLine}}
	for _, w := range r.Ways {
		cf.Remedy.Ways = append(cf.Remedy.Ways, Way{Do: w.Do, In: w.In, Lines: nonNil(w.Lines)})
	}
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
