// Command sd-switch is the end-to-end tests' stand-in for the program
// home-manager's reloadSystemd step runs (sd-switch), bound into the test
// machines where that step's script, as home-manager renders it, calls it:
//
//	sd-switch [--dry-run] [--verbose] [--timeout MS] [--old-units DIR] --new-units DIR
//
// It does to the user's units what sd-switch does: stop the active units
// the new generation no longer has, reload the manager, restart (or
// reload, or stop and start, as the unit's X-SwitchMethod says) the active
// units whose files changed, and start every active target, so that
// systemd starts what the targets want and is not running: new units,
// and units that stopped or failed. It exits 1 when a job it asked for
// directly failed; a unit a target pulls in may fail without that.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fl := flag.NewFlagSet("sd-switch", flag.ContinueOnError)
	dryRun := fl.Bool("dry-run", false, "say what would be done")
	verbose := fl.Bool("verbose", false, "say more")
	timeoutMS := fl.Int("timeout", 0, "how long to wait for the jobs, in milliseconds (0: two minutes)")
	oldDir := fl.String("old-units", "", "the previous generation's unit directory")
	newDir := fl.String("new-units", "", "the new generation's unit directory")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if *newDir == "" {
		fmt.Fprintln(os.Stderr, "sd-switch: --new-units is required")
		return 2
	}
	timeout := 2 * time.Minute
	if *timeoutMS > 0 {
		timeout = time.Duration(*timeoutMS) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	old, err := readUnits(*oldDir)
	if err == nil {
		var cur map[string][]byte
		cur, err = readUnits(*newDir)
		if err == nil {
			err = switchUnits(ctx, old, cur, *dryRun, *verbose)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sd-switch:", err)
		return 1
	}
	return 0
}

// readUnits reads the unit files directly in dir (through links, as the
// manager does); a directory that is not there holds none (home-manager
// names an empty one when a generation has no units).
func readUnits(dir string) (map[string][]byte, error) {
	units := map[string][]byte{}
	if dir == "" {
		return units, nil
	}
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return units, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		name := e.Name()
		if !isUnitName(name) {
			continue
		}
		path := filepath.Join(dir, name)
		st, err := os.Stat(path)
		if os.IsNotExist(err) {
			continue // a dangling link is no unit
		}
		if err != nil {
			return nil, err
		}
		if !st.Mode().IsRegular() {
			continue
		}
		if units[name], err = os.ReadFile(path); err != nil {
			return nil, err
		}
	}
	return units, nil
}

func isUnitName(name string) bool {
	for _, suffix := range []string{".service", ".socket", ".timer", ".target", ".path", ".mount", ".slice"} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

// switchMethod is the unit's X-SwitchMethod (restart when unset).
func switchMethod(unit []byte) string {
	method := "restart"
	for _, line := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "X-SwitchMethod="); ok {
			method = strings.TrimSpace(v)
		}
	}
	return method
}

func switchUnits(ctx context.Context, old, cur map[string][]byte, dryRun, verbose bool) error {
	states, err := unitStates(ctx)
	if err != nil {
		return err
	}
	active := func(u string) bool {
		s := states[u]
		return s == "active" || s == "activating" || s == "reloading"
	}
	var stop, restart, reload, stopStart []string
	for _, u := range sortedKeys(old) {
		newUnit, kept := cur[u]
		switch {
		case !kept:
			if active(u) {
				stop = append(stop, u)
			}
		case !bytes.Equal(old[u], newUnit) && active(u):
			switch switchMethod(newUnit) {
			case "keep-old":
			case "reload":
				reload = append(reload, u)
			case "stop-start":
				stopStart = append(stopStart, u)
			default:
				restart = append(restart, u)
			}
		}
	}
	if verbose || dryRun {
		fmt.Printf("Unit switch plan: stop %v, stop/start %v, restart %v, reload %v, then start the active targets\n", stop, stopStart, restart, reload)
	}
	if dryRun {
		return nil
	}
	var failed []string
	do := func(verb string, units []string) {
		if len(units) == 0 {
			return
		}
		fmt.Printf("%s units: %s\n", map[string]string{"stop": "Stopping", "start": "Starting", "restart": "Restarting", "reload": "Reloading"}[verb], strings.Join(units, ", "))
		if out, err := systemctl(ctx, append([]string{verb}, units...)...); err != nil {
			failed = append(failed, fmt.Sprintf("%s %s: %v: %s", verb, strings.Join(units, " "), err, strings.TrimSpace(out)))
		}
	}
	do("stop", append(slices.Clone(stop), stopStart...))
	if out, err := systemctl(ctx, "daemon-reload"); err != nil {
		return fmt.Errorf("reloading the user manager: %v: %s", err, out)
	}
	do("restart", restart)
	do("reload", reload)
	do("start", stopStart)
	targets, err := activeTargets(ctx)
	if err != nil {
		return err
	}
	if verbose {
		fmt.Printf("Starting the active targets: %s\n", strings.Join(targets, ", "))
	}
	if len(targets) > 0 {
		if out, err := systemctl(ctx, append([]string{"start"}, targets...)...); err != nil {
			failed = append(failed, fmt.Sprintf("start %s: %v: %s", strings.Join(targets, " "), err, strings.TrimSpace(out)))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("switching: %s", strings.Join(failed, "; "))
	}
	return nil
}

// unitStates maps every unit the user manager knows to its active state.
func unitStates(ctx context.Context) (map[string]string, error) {
	out, err := systemctl(ctx, "list-units", "--all", "--plain", "--no-legend", "--full")
	if err != nil {
		return nil, fmt.Errorf("listing the user's units: %v: %s", err, out)
	}
	states := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 {
			states[f[0]] = f[2]
		}
	}
	return states, nil
}

// activeTargets lists the active targets that may be started by hand.
func activeTargets(ctx context.Context) ([]string, error) {
	out, err := systemctl(ctx, "list-units", "--type=target", "--state=active", "--plain", "--no-legend", "--full")
	if err != nil {
		return nil, fmt.Errorf("listing the user's active targets: %v: %s", err, out)
	}
	var targets []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		refuse, _ := systemctl(ctx, "show", "-P", "RefuseManualStart", f[0])
		if strings.TrimSpace(refuse) != "yes" {
			targets = append(targets, f[0])
		}
	}
	return targets, nil
}

func systemctl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "systemctl", append([]string{"--user"}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
