// Command bench measures what portclaim adds to a switch, on a booted test
// machine, against the shell approach it replaces (baseline.sh), in one run:
// for N = 2, 50 and 500 mapped services (each a system unit holding its
// port, the manifest declaring a user unit for it) plus 5,000 unrelated
// listening sockets, it times `portclaim check` as a whole process, as
// root and as alice, and the baseline on the same machine state; then the
// activation entries' commands when nothing conflicts. Run as root:
//
//	sudo go run ./nixos-tests/tools/bench
//
// With -compare REV it also builds portclaim at that git revision and
// times it beside this tree's, run by run (benchrun -also), on the same
// machine state: the ratios say what a change cost, whatever the
// machine's drift.
// -sizes 2 -runs 200 measures a small change quickly (the baseline at
// N = 500 alone takes minutes).
//
// Benchmarks are not tests: nothing here passes or fails on a time.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portclaim/portclaim/nixos-tests/machine"
	"github.com/portclaim/portclaim/nixos-tests/nixeval"
	"github.com/portclaim/portclaim/nixos-tests/tools/bench/timing"
)

const (
	noiseSockets = 5000
	noiseBase    = 20000 // ports of the unrelated sockets
	mappedBase   = 30000 // port of mapped service i: mappedBase+i
	freeBase     = 40000 // ports nobody holds, for the switch cost
	dir          = "/etc/portclaim-bench"
)

func main() {
	runs := flag.Int("runs", 30, "measured runs of portclaim per configuration")
	compare := flag.String("compare", "", "a git revision whose portclaim to time beside this tree's")
	sizesFlag := flag.String("sizes", "2,50,500", "the numbers of mapped services to time, comma-separated (500 takes minutes: the baseline is slow)")
	flag.Parse()
	var sizes []int
	for _, f := range strings.Split(*sizesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1000 {
			fmt.Fprintf(os.Stderr, "bench: -sizes: %q is not a number of services from 1 to 1000\n", f)
			os.Exit(2)
		}
		sizes = append(sizes, n)
	}
	slices.Sort(sizes) // each size adds units to the last one's
	sizes = slices.Compact(sizes)
	if err := run(*runs, *compare, sizes); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run(runs int, compare string, sizes []int) error {
	if err := machine.Prereqs(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	bins, err := os.MkdirTemp("", "portclaim-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(bins)
	for _, pkg := range []string{"./cmd/portclaim", "./nixos-tests/tools/holdport", "./nixos-tests/tools/bench/benchrun"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(bins, filepath.Base(pkg)), pkg)
		cmd.Dir = nixeval.RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building %s: %v\n%s", pkg, err, out)
		}
	}
	binds := map[string]string{
		filepath.Join(bins, "portclaim"): "/usr/local/bin/portclaim",
		filepath.Join(bins, "holdport"):  "/usr/local/bin/holdport",
		filepath.Join(bins, "benchrun"):  "/usr/local/bin/benchrun",
		filepath.Join(nixeval.RepoRoot(), "nixos-tests", "tools", "bench", "baseline.sh"): "/usr/local/bin/baseline.sh",
	}
	if compare != "" {
		if err := buildAt(ctx, compare, filepath.Join(bins, "portclaim-old")); err != nil {
			return err
		}
		binds[filepath.Join(bins, "portclaim-old")] = "/usr/local/bin/portclaim-old"
	}
	m, err := machine.Boot(ctx, machine.Config{BindRO: binds})
	if err != nil {
		return err
	}
	defer m.Close()
	b := &bench{m: m, ctx: ctx, compare: compare != ""}

	fmt.Fprintf(os.Stderr, "starting %d unrelated listening sockets\n", noiseSockets)
	var specs []string
	for i := 0; i < noiseSockets; i++ {
		specs = append(specs, fmt.Sprintf("tcp4:127.0.0.1:%d", noiseBase+i))
	}
	b.unit("pc-noise.service", "[Service]\nLimitNOFILE=16384\nExecStart=/usr/local/bin/holdport "+strings.Join(specs, " ")+"\n")
	b.must("root", "systemctl", "daemon-reload")
	b.must("root", "systemctl", "start", "pc-noise.service")
	b.waitSockets(noiseSockets)

	if compare != "" {
		fmt.Printf("| N | sockets | portclaim check, root (median) | as alice (median) | baseline (median) | baseline / portclaim | peak RSS | %s as alice (median) | %s / this |\n", compare, compare)
		fmt.Printf("|---|---|---|---|---|---|---|---|---|\n")
	} else {
		fmt.Printf("| N | sockets | portclaim check, root (median) | as alice (median) | baseline (median) | baseline / portclaim | peak RSS |\n")
		fmt.Printf("|---|---|---|---|---|---|---|\n")
	}
	installed := 0
	for _, n := range sizes {
		var names []string
		for i := installed; i < n; i++ {
			name := fmt.Sprintf("pc-bench-%d.service", i)
			b.unit(name, fmt.Sprintf("[Service]\nExecStart=/usr/local/bin/holdport tcp4:127.0.0.1:%d\n", mappedBase+i))
			names = append(names, name)
		}
		b.must("root", "systemctl", "daemon-reload")
		b.must("root", append([]string{"systemctl", "start"}, names...)...)
		b.userUnits(installed, n)
		installed = n
		b.waitSockets(noiseSockets + n)
		manifest, mapFile := b.manifest(n, mappedBase, "pc-bench-%d.service")
		root := b.time("root", runs, "portclaim", "check", "--user", "alice", "--manifest", manifest)
		alice, old := b.timeBoth("alice", runs, "portclaim", "check", "--manifest", manifest)
		baseRuns := 10
		if n >= 500 {
			baseRuns = 3
		}
		base := b.timeN("root", baseRuns, 1, "", "sh", "/usr/local/bin/baseline.sh", mapFile)[0]
		fmt.Printf("| %d | %d | %.1f ms (min %.1f, max %.1f) | %.1f ms (min %.1f, max %.1f) | %.0f ms | %.0fx | %.1f MB |",
			n, noiseSockets+n, root.MedianMS, root.MinMS, root.MaxMS, alice.MedianMS, alice.MinMS, alice.MaxMS,
			base.MedianMS, base.MedianMS/root.MedianMS, float64(max(root.MaxRSSKB, alice.MaxRSSKB))/1024)
		if compare != "" {
			fmt.Printf(" %.1f ms (min %.1f, max %.1f) | %.2f |", old.MedianMS, old.MinMS, old.MaxMS, old.MedianMS/alice.MedianMS)
		}
		fmt.Println()
		if !slices.Contains(root.ExitCodes, 1) || !slices.Contains(alice.ExitCodes, 1) {
			fmt.Fprintf(os.Stderr, "warning: check did not report the %d conflicts (exit codes root %v, alice %v)\n", n, root.ExitCodes, alice.ExitCodes)
		}
	}

	// The cost of a switch when nothing conflicts: the two activation
	// entries' commands, as home-manager runs them (as the user).
	manifest, _ := b.manifest(50, freeBase, "pc-free-%d.service")
	res, oldRes := b.timeBoth("alice", runs, "portclaim", "resolve", "--manifest", manifest)
	rel, oldRel := b.timeBoth("alice", runs, "portclaim", "release", "--manifest", manifest)
	fmt.Printf("\nswitch cost with 50 mapped services, nothing conflicting, %d sockets: resolve %.1f ms (min %.1f, max %.1f), release %.1f ms (min %.1f, max %.1f), peak RSS %.1f MB\n",
		noiseSockets+installed, res.MedianMS, res.MinMS, res.MaxMS, rel.MedianMS, rel.MinMS, rel.MaxMS, float64(max(res.MaxRSSKB, rel.MaxRSSKB))/1024)
	if compare != "" {
		fmt.Printf("the same with %s: resolve %.1f ms (min %.1f, max %.1f), release %.1f ms (min %.1f, max %.1f); %s / this: resolve %.2f, release %.2f\n",
			compare, oldRes.MedianMS, oldRes.MinMS, oldRes.MaxMS, oldRel.MedianMS, oldRel.MinMS, oldRel.MaxMS,
			compare, oldRes.MedianMS/res.MedianMS, oldRel.MedianMS/rel.MedianMS)
	}
	return nil
}

// buildAt builds cmd/portclaim as it was at rev, from a worktree of this
// repository that is removed again.
func buildAt(ctx context.Context, rev, out string) error {
	dir, err := os.MkdirTemp("", "portclaim-bench-rev-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	git := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = nixeval.RepoRoot()
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, b)
		}
		return nil
	}
	if err := git("worktree", "add", "--detach", dir, rev); err != nil {
		return err
	}
	defer git("worktree", "remove", "--force", dir)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/portclaim")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building portclaim at %s: %v\n%s", rev, err, b)
	}
	return nil
}

type bench struct {
	m       *machine.Machine
	ctx     context.Context
	compare bool // portclaim-old is on the machine: time it beside portclaim
}

func (b *bench) must(user string, args ...string) string {
	r := b.m.Run(b.ctx, user, args...)
	if r.ExitCode != 0 {
		fmt.Fprintf(os.Stderr, "%s\n", r)
		os.Exit(1)
	}
	return r.Stdout
}

func (b *bench) unit(name, body string) {
	if err := b.m.WriteFile("/etc/systemd/system/"+name, []byte(body), 0o644, ""); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// userUnits writes alice's user units for services from..to-1, as
// home-manager would have (not started: their system twins hold the ports).
func (b *bench) userUnits(from, to int) {
	for i := from; i < to; i++ {
		body := fmt.Sprintf("[Service]\nExecStart=/usr/local/bin/holdport tcp::%d\n", mappedBase+i)
		if err := b.m.WriteFile(fmt.Sprintf("/home/alice/.config/systemd/user/podman-bench-%d.service", i), []byte(body), 0o644, "alice"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	b.m.RunEnv(b.ctx, "alice", []string{"XDG_RUNTIME_DIR=/run/user/1000"}, "systemctl", "--user", "daemon-reload")
}

// waitSockets waits until at least n TCP sockets listen.
func (b *bench) waitSockets(n int) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got := strings.Count(b.must("root", "ss", "-Htln"), "\n")
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "only %d of %d sockets listening\n", got, n)
			os.Exit(1)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// manifest writes the manifest for n services and the baseline's map.
func (b *bench) manifest(n, base int, unitFormat string) (manifest, mapFile string) {
	var services, lines []string
	for i := 0; i < n; i++ {
		unit := fmt.Sprintf(unitFormat, i)
		services = append(services, fmt.Sprintf(`{"name":"b%d","systemUnits":[%q],"userUnits":["podman-bench-%d.service"],"ports":[{"port":%d}]}`, i, unit, i, base+i))
		lines = append(lines, fmt.Sprintf("%s %d", unit, base+i))
	}
	manifest = fmt.Sprintf("%s/%d-%d.json", dir, base, n)
	mapFile = fmt.Sprintf("%s/%d-%d.map", dir, base, n)
	b.m.WriteFile(manifest, []byte(`{"version":1,"services":[`+strings.Join(services, ",")+"]}"), 0o644, "")
	b.m.WriteFile(mapFile, []byte(strings.Join(lines, "\n")+"\n"), 0o644, "")
	return manifest, mapFile
}

func (b *bench) time(user string, runs int, args ...string) timing.Result {
	return b.timeN(user, runs, 3, "", args...)[0]
}

// timeBoth times args (which start with "portclaim") and, when there is a
// revision to compare with, its portclaim in their place, run by run
// (benchrun -also): the old one's result is zero without a revision.
func (b *bench) timeBoth(user string, runs int, args ...string) (this, old timing.Result) {
	if !b.compare {
		return b.time(user, runs, args...), timing.Result{}
	}
	both := b.timeN(user, runs, 3, "portclaim-old", args...)
	return both[0], both[1]
}

func (b *bench) timeN(user string, runs, warmup int, also string, args ...string) []timing.Result {
	out := b.must(user, append([]string{"benchrun", "-n", fmt.Sprint(runs), "-warmup", fmt.Sprint(warmup), "-also", also, "--"}, args...)...)
	var rs []timing.Result
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var t timing.Result
		if err := json.Unmarshal([]byte(line), &t); err != nil {
			fmt.Fprintf(os.Stderr, "benchrun said %q: %v\n", out, err)
			os.Exit(1)
		}
		rs = append(rs, t)
	}
	return rs
}
