// Command benchrun times a command inside a test machine: it runs it
// -warmup times unmeasured, then -n times, and prints one JSON line with
// the median, min and max wall time and the peak resident set size of the
// child (getrusage), so that process start, D-Bus handshakes and /proc
// reads are all in the number, as a user would pay them.
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

func main() {
	n := flag.Int("n", 30, "measured runs")
	warmup := flag.Int("warmup", 3, "unmeasured runs first")
	flag.Parse()
	args := flag.Args()
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: benchrun [-n N] [-warmup W] -- command args...")
		os.Exit(2)
	}
	var r timing.Result
	var times []float64
	codes := map[int]bool{}
	for i := 0; i < *warmup+*n; i++ {
		cmd := exec.Command(args[0], args[1:]...)
		start := time.Now()
		err := cmd.Run()
		took := time.Since(start)
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			fmt.Fprintf(os.Stderr, "benchrun: %v\n", err)
			os.Exit(1)
		}
		if i < *warmup {
			continue
		}
		times = append(times, float64(took.Microseconds())/1000)
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss > r.MaxRSSKB {
			r.MaxRSSKB = ru.Maxrss
		}
		codes[cmd.ProcessState.ExitCode()] = true
	}
	slices.Sort(times)
	r.Runs = len(times)
	r.MinMS, r.MaxMS = times[0], times[len(times)-1]
	r.MedianMS = times[len(times)/2]
	if len(times)%2 == 0 {
		r.MedianMS = (times[len(times)/2-1] + times[len(times)/2]) / 2
	}
	for c := range codes {
		r.ExitCodes = append(r.ExitCodes, c)
	}
	slices.Sort(r.ExitCodes)
	json.NewEncoder(os.Stdout).Encode(r)
}
