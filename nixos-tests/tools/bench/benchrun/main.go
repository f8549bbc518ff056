// Command benchrun times a command inside a test machine: it runs it
// -warmup times unmeasured, then -n times, and prints one JSON line with
// the median, min and max wall time and the peak resident set size of the
// child (getrusage), so that process start, D-Bus handshakes and /proc
// reads are all in the number, as a user would pay them.
//
// With -also PROG it times the same command with PROG in place of its
// first word too, each run right after the other's, and prints a second
// line: the machine's drift then falls on both alike, and their ratio
// says what the difference between the two programs costs.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"time"

	"github.com/portclaim/portclaim/nixos-tests/tools/bench/timing"
)

// series is the measured runs of one command.
type series struct {
	args  []string
	times []float64
	rss   int64
	codes map[int]bool
}

// run runs the command once and, when measured, records it.
func (s *series) run(measured bool) {
	cmd := exec.Command(s.args[0], s.args[1:]...)
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		fmt.Fprintf(os.Stderr, "benchrun: %v\n", err)
		os.Exit(1)
	}
	if !measured {
		return
	}
	s.times = append(s.times, float64(took.Microseconds())/1000)
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss > s.rss {
		s.rss = ru.Maxrss
	}
	s.codes[cmd.ProcessState.ExitCode()] = true
}

func (s *series) result() timing.Result {
	times := slices.Sorted(slices.Values(s.times))
	r := timing.Result{Runs: len(times), MinMS: times[0], MaxMS: times[len(times)-1], MedianMS: times[len(times)/2], MaxRSSKB: s.rss}
	if len(times)%2 == 0 {
		r.MedianMS = (times[len(times)/2-1] + times[len(times)/2]) / 2
	}
	for c := range s.codes {
		r.ExitCodes = append(r.ExitCodes, c)
	}
	slices.Sort(r.ExitCodes)
	return r
}

func main() {
	n := flag.Int("n", 30, "measured runs")
	warmup := flag.Int("warmup", 3, "unmeasured runs first")
	also := flag.String("also", "", "a program to time in place of the command's first word too, run by run")
	flag.Parse()
	args := flag.Args()
	if len(args) == 0 || *n < 1 {
		fmt.Fprintln(os.Stderr, "usage: benchrun [-n N] [-warmup W] [-also PROG] -- command args...")
		os.Exit(2)
	}
	all := []*series{{args: args, codes: map[int]bool{}}}
	if *also != "" {
		all = append(all, &series{args: append([]string{*also}, args[1:]...), codes: map[int]bool{}})
	}
	for i := 0; i < *warmup+*n; i++ {
		for _, s := range all {
			s.run(i >= *warmup)
		}
	}
	enc := json.NewEncoder(os.Stdout)
	for _, s := range all {
		enc.Encode(s.result())
	}
}
