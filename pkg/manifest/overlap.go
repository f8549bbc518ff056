package manifest

import (
	"net/netip"

	"github.com/portclaim/portclaim/pkg/endpoint"
)

// overlapIndex finds, for each endpoint added, an earlier one it
// overlaps (endpoint.Overlap), in constant time: comparing every pair
// would take 6,000 services on one port to 18 million comparisons.
// Manifest endpoints are never v6-only, so "::" covers IPv4 too.
type overlapIndex struct {
	byPort map[portKey]*portClaims
}

type portKey struct {
	proto endpoint.Proto
	port  uint16
}

// portClaims are the first claimants of one protocol and port, by what
// they cover; -1 for none.
type portClaims struct {
	first  int // any claimant
	all    int // every address ("")
	wild4  int // 0.0.0.0
	wild6  int // ::, which covers IPv4 too
	any4   int // some IPv4 address
	any6   int // some IPv6 address
	byAddr map[netip.Addr]int
}

func newOverlapIndex() *overlapIndex { return &overlapIndex{byPort: map[portKey]*portClaims{}} }

// add records e under id and returns the id of an earlier endpoint that
// e overlaps, if any.
func (x *overlapIndex) add(e endpoint.Endpoint, id int) (int, bool) {
	k := portKey{e.Proto, e.Port}
	c := x.byPort[k]
	if c == nil {
		c = &portClaims{first: -1, all: -1, wild4: -1, wild6: -1, any4: -1, any6: -1, byAddr: map[netip.Addr]int{}}
		x.byPort[k] = c
	}
	clash := c.clash(e)
	c.record(e, id)
	return clash, clash >= 0
}

func (c *portClaims) clash(e endpoint.Endpoint) int {
	if e.All() {
		return c.first
	}
	a := e.Addr.Unmap()
	candidates := []int{c.all, c.byAddr[a] - 1}
	switch {
	case a.Is4():
		candidates = append(candidates, c.wild4, c.wild6)
		if a.IsUnspecified() {
			candidates = append(candidates, c.any4)
		}
	case a.IsUnspecified(): // ::, dual-stack
		candidates = append(candidates, c.any6, c.any4)
	default:
		candidates = append(candidates, c.wild6)
	}
	for _, id := range candidates {
		if id >= 0 {
			return id
		}
	}
	return -1
}

func (c *portClaims) record(e endpoint.Endpoint, id int) {
	keep := func(slot *int) {
		if *slot < 0 {
			*slot = id
		}
	}
	keep(&c.first)
	if e.All() {
		keep(&c.all)
		return
	}
	a := e.Addr.Unmap()
	if _, seen := c.byAddr[a]; !seen {
		c.byAddr[a] = id + 1 // 0 means absent
	}
	switch {
	case a.Is4() && a.IsUnspecified():
		keep(&c.wild4)
	case a.IsUnspecified():
		keep(&c.wild6)
	}
	if a.Is4() {
		keep(&c.any4)
	} else {
		keep(&c.any6)
	}
}
