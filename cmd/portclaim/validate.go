package main

import (
	"fmt"
	"io"

	"github.com/portclaim/portclaim/pkg/manifest"
	"github.com/portclaim/portclaim/pkg/report"
	"github.com/portclaim/portclaim/pkg/safeopen"
)

type validateCmd struct {
	File       string `arg:"" help:"Manifest file to check (- for standard input)." type:"path"`
	formatFlag `embed:""`
}

func (c *validateCmd) Run(a *app) error {
	name := c.File
	var data []byte
	var err error
	if c.File == "-" {
		name = "standard input"
		data, err = readAtMost(a.stdin, manifest.MaxSize)
	} else {
		data, err = safeopen.ReadFile(name, manifest.MaxSize)
	}
	if err != nil {
		return manifestReadError(name, err)
	}
	m, err := manifest.Parse(name, data)
	switch {
	case err != nil && c.asJSON():
		return renderThen(a.stdout, true, report.InvalidDoc(name, err), nil, exitBadInput)
	case err != nil:
		// For people, the problems are the error on stderr.
		return fail(exitBadInput, "fix the fields above (the home-manager module's services.portclaim options render this file)", "%v", err)
	}
	doc := report.ValidDoc(name, m)
	return render(a.stdout, c.asJSON(), doc, func(w io.Writer) {
		fmt.Fprintf(w, "%s: valid (version %d, strategy %s, %d service%s, %d port%s)\n", name, m.Version, m.Strategy,
			doc.Services, plural(doc.Services), doc.Ports, plural(doc.Ports))
		for _, n := range m.Notes {
			a.notef("%s", n)
		}
	})
}
