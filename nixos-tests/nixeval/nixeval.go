// Package nixeval evaluates portclaim's builtins-only Nix functions
// ((import ./module.nix).lib, nix/lib.nix) with Debian's nix-instantiate,
// without nixpkgs or a Nix daemon, so that tests install exactly what the
// NixOS module installs: SystemFiles is every file of it, by path.
// (nixos-tests/moduleeval checks the NixOS module installs exactly that.)
package nixeval

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// RepoRoot is the repository's top directory (where module.nix is).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Available reports whether nix-instantiate can be run.
func Available() error {
	if _, err := exec.LookPath("nix-instantiate"); err != nil {
		return fmt.Errorf("nix-instantiate not found (apt-get install nix-bin)")
	}
	return nil
}

// Lib evaluates expr with `pc` bound to module.nix's lib and decodes the
// JSON result into out.
func Lib(ctx context.Context, expr string, out any) error {
	full := fmt.Sprintf("let pc = (import %s).lib; in %s", filepath.Join(RepoRoot(), "module.nix"), expr)
	data, err := Eval(ctx, full)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, out)
}

// Eval runs nix-instantiate --eval --strict --json on expr. The dummy
// store keeps evaluation from touching /nix (and works unprivileged).
func Eval(ctx context.Context, expr string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "nix-instantiate", "--store", "dummy://", "--eval", "--strict", "--json", "-E", expr)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Env = append(os.Environ(), "NIX_PATH=")
	out, err := cmd.Output()
	if err != nil {
		return nil, &Error{Stderr: stderr.String(), Err: err}
	}
	return out, nil
}

// Error is a failed evaluation; Stderr holds Nix's message (a test of a
// module's error reads it).
type Error struct {
	Stderr string
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("nix-instantiate: %v\n%s", e.Err, strings.TrimSpace(e.Stderr))
}

// Parse checks that file parses (nix-instantiate --parse).
func Parse(ctx context.Context, file string) error {
	cmd := exec.CommandContext(ctx, "nix-instantiate", "--store", "dummy://", "--parse", file)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s does not parse: %v\n%s", file, err, out)
	}
	return nil
}

// NixString quotes s as a Nix string literal.
func NixString(s string) string {
	b, _ := json.Marshal(s) // JSON escapes are valid Nix escapes, but for "${"
	return string(bytes.ReplaceAll(b, []byte("${"), []byte(`\${`)))
}

// SystemFile is one file the NixOS module puts on a machine: its content,
// or, for the .wants links NixOS makes from wantedBy, the absolute path it
// links to. Exactly one of the two is set.
type SystemFile struct {
	Content string
	Symlink string
}

// SystemFilesArgs are lib.systemFiles' arguments.
type SystemFilesArgs struct {
	// Portclaim is the binary's path on the machine.
	Portclaim string
	// Yield maps a .service or .socket unit to the users it may yield to.
	Yield map[string][]string
	// ClaimsDir: "" for the module's default.
	ClaimsDir string
	// TextfileDirectory: "" for no metrics units.
	TextfileDirectory string
}

// SystemFiles evaluates (import ./module.nix).lib.systemFiles: every file
// the NixOS module installs for these arguments, by absolute path (the
// policy, the broker's socket and service, the reconcile service and their
// .wants links, one start-condition drop-in per yielding unit, tmpfiles,
// and the metrics units when a textfile directory is set).
func SystemFiles(ctx context.Context, a SystemFilesArgs) (map[string]SystemFile, error) {
	yield := a.Yield
	if yield == nil {
		yield = map[string][]string{}
	}
	y, err := json.Marshal(yield)
	if err != nil {
		return nil, err
	}
	args := fmt.Sprintf("portclaim = %s; yield = builtins.fromJSON %s;", NixString(a.Portclaim), NixString(string(y)))
	if a.ClaimsDir != "" {
		args += " claimsDir = " + NixString(a.ClaimsDir) + ";"
	}
	if a.TextfileDirectory != "" {
		args += " textfileDirectory = " + NixString(a.TextfileDirectory) + ";"
	}
	var raw map[string]json.RawMessage
	if err := Lib(ctx, "pc.systemFiles { "+args+" }", &raw); err != nil {
		return nil, err
	}
	files := make(map[string]SystemFile, len(raw))
	for path, v := range raw {
		var f SystemFile
		if err := json.Unmarshal(v, &f.Content); err != nil {
			var link struct {
				Symlink string `json:"symlink"`
			}
			if err := json.Unmarshal(v, &link); err != nil || link.Symlink == "" {
				return nil, fmt.Errorf("systemFiles: %s is neither a file's content nor a symlink: %s", path, v)
			}
			f.Symlink = link.Symlink
		}
		files[path] = f
	}
	return files, nil
}
