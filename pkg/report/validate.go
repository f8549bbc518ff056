package report

import (
	"errors"

	"github.com/portclaim/portclaim/pkg/manifest"
)

// ValidateDoc is validate's JSON document.
type ValidateDoc struct {
	File     string   `json:"file"`
	Valid    bool     `json:"valid"`
	Version  int      `json:"version,omitempty"`
	Strategy string   `json:"strategy,omitempty"`
	Services int      `json:"services"`
	Ports    int      `json:"ports"`
	Notes    []string `json:"notes"`
	// Problems each name the JSON path of what is wrong ("" for the
	// whole file) and what; More counts those beyond the ones listed.
	Problems []ValidateProblem `json:"problems"`
	More     int               `json:"more,omitempty"`
}

// ValidateProblem is one thing wrong in a manifest, and where.
type ValidateProblem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// ValidDoc is the document of file, which parsed as m.
func ValidDoc(file string, m manifest.Manifest) ValidateDoc {
	d := ValidateDoc{File: file, Valid: true, Version: m.Version, Strategy: string(m.Strategy), Services: len(m.Services),
		Notes: nonNil(m.Notes), Problems: []ValidateProblem{}}
	for _, s := range m.Services {
		d.Ports += len(s.Ports)
	}
	return d
}

// InvalidDoc is the document of file, which did not parse: err's
// problems, each with its JSON path.
func InvalidDoc(file string, err error) ValidateDoc {
	d := ValidateDoc{File: file, Notes: []string{}, Problems: []ValidateProblem{}}
	var e *manifest.Error
	if !errors.As(err, &e) {
		d.Problems = append(d.Problems, ValidateProblem{Message: err.Error()})
		return d
	}
	for _, p := range e.Problems {
		d.Problems = append(d.Problems, ValidateProblem{Path: p.Path, Message: p.Message})
	}
	d.More = e.More
	return d
}
