package e2e

// A request's changes outlive the request's context: SIGTERM (systemd
// stopping the broker), a deadline spent waiting for a turn, or the
// client leaving do not cut a stop short and leave its unit down, failed,
// with a record nobody asked for.

import (
	"context"
	"testing"
)

func init() {
	yieldTo["pc-term.service"] = []string{"alice"}
}

// TestSIGTERMDuringAStopLetsItFinish: systemd stops the broker while its
// stop job runs (a slow ExecStop). The broker finishes that stop, answers
// that the unit was stopped and claimed, then exits. Before, the job
// wait ended with the context: the unit was called failed, and the
// rollback, on the same ended context, could not read it: the unit went
// down anyway, its claim kept, the answer a failure.
func TestSIGTERMDuringAStopLetsItFinish(t *testing.T) {
	ctx := need(t)
	systemUnit(t, ctx, "pc-term.service", "TimeoutStopSec=5min", true, false, "tcp4:127.0.0.1:7272")
	// The stop lasts until the broker has its SIGTERM.
	stop := newGate(t, ctx, "term")
	addDropIn(t, ctx, "pc-term.service", "[Service]\nExecStop="+stop.Wait()+"\n")
	path := manifest(t, "term", oneService("term", "pc-term.service", "podman-term.service", 7272, ""))
	t.Cleanup(func() { m.Run(context.Background(), "root", "rm", "-f", "/tmp/term.out", "/tmp/term.exit") })
	must(t, ctx, "alice", "sh", "-c", "(portclaim resolve --manifest "+path+" > /tmp/term.out 2>&1; echo $? > /tmp/term.exit) </dev/null >/dev/null 2>&1 &")
	waitFor(t, ctx, "root", `test "$(systemctl is-active pc-term.service)" = deactivating`)
	must(t, ctx, "root", "systemctl", "stop", "--no-block", "portclaim.service")
	waitFor(t, ctx, "root", `test "$(systemctl is-active portclaim.service)" = deactivating`)
	stop.Open(t, ctx)
	waitFor(t, ctx, "root", "test -s /tmp/term.exit")
	out := must(t, ctx, "root", "cat", "/tmp/term.out")
	contains(t, "resolve", out, "yielded  pc-term.service to alice: stopped and claimed")
	if s := isActive(ctx, "pc-term.service"); s != "inactive" {
		t.Errorf("pc-term.service is %s\n%s", s, out)
	}
	if _, ok := readClaim(t, ctx, "pc-term.service"); !ok {
		t.Errorf("pc-term.service is down without its claim\n%s", out)
	}
	waitFor(t, ctx, "root", "! systemctl is-active -q portclaim.service")
}
