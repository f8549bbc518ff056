package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/portclaim/portclaim/pkg/report"
)

// formatFlag is how a command prints its document: every command that
// prints one takes --format (status's adds prometheus), and --json, its
// older spelling.
type formatFlag struct {
	Format string `enum:"text,json" default:"text" help:"text, or json (schema in the README)."`
	JSON   bool   `name:"json" help:"Print JSON (schema in the README); the same as --format json."`
}

// asJSON reports whether the document is printed as JSON.
func (f formatFlag) asJSON() bool { return f.JSON || f.Format == "json" }

// render is the one way a document reaches its reader: as JSON (the
// README's schema), or for people, as text writes it.
func render(w io.Writer, asJSON bool, doc any, text func(io.Writer)) error {
	if asJSON {
		return report.WriteJSON(w, doc)
	}
	text(w)
	return nil
}

// renderThen renders a document, then ends with code.
func renderThen(w io.Writer, asJSON bool, doc any, text func(io.Writer), code int) error {
	if err := render(w, asJSON, doc, text); err != nil {
		return err
	}
	return quietExit(code)
}

// writeOut writes to standard output, or atomically to path: a reader
// (node_exporter) sees the old file or the whole new one.
func (a *app) writeOut(path string, write func(io.Writer) error) error {
	if path == "" {
		return write(a.stdout)
	}
	if err := outputDir(path); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fail(exitEnv, "", "writing %s: %v", path, err)
	}
	defer os.Remove(tmp.Name())
	err = write(tmp)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fail(exitEnv, "", "writing %s: %v", path, err)
	}
	return nil
}

// outputDir checks that --output's directory is there ("": standard
// output), before anything is read for the file or written to it.
func outputDir(path string) error {
	if path == "" {
		return nil
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fail(exitBadInput, fmt.Sprintf("create it first (mkdir -p %s), or give --output a file in a directory that exists", dir),
			"--output %s: the directory %s does not exist; nothing was written", path, dir)
	}
	return nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
