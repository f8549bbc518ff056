package plan

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portclaim/portclaim/pkg/claim"
	"github.com/portclaim/portclaim/pkg/endpoint"
	"github.com/portclaim/portclaim/pkg/host"
	"github.com/portclaim/portclaim/pkg/policy"
)

const claims = "/var/lib/portclaim/claims"

func claimPath(user, unit string) string { return claims + "/" + user + "/" + unit }

func keptBy(units ...string) []host.Condition {
	var out []host.Condition
	for _, u := range units {
		user, unit, _ := strings.Cut(u, "/")
		out = append(out, host.Condition{Type: "ConditionPathExists", Negate: true, Param: claimPath(user, unit)})
	}
	return out
}

func active(name string, conds ...host.Condition) UnitFacts {
	return UnitFacts{Unit: host.Unit{Name: name, ActiveState: "active", UnitFileState: "enabled", LoadState: "loaded"}, Conditions: conds}
}

func record(user, unit string, at int64, prior string) claim.Record {
	return claim.Record{User: user, Unit: unit, Claim: claim.Claim{Version: 2, User: user, Unit: unit, Method: claim.ByCondition,
		ClaimedAt: time.Unix(at, 0), Prior: claim.Prior{ActiveState: prior}}}
}

func yieldIn() YieldInput {
	pol := &policy.Policy{Yield: map[string][]string{"ollama.service": {"alice", "bob"}, "ollama.socket": {"alice"}}}
	return YieldInput{User: "alice", Authority: Authority{Policy: pol}, Service: "ollama", Asked: []string{"ollama.socket", "ollama.service"},
		Ports: []endpoint.Endpoint{{Proto: endpoint.TCP, Port: 11434}}, ClaimPath: claimPath, Now: time.Unix(100, 0),
		Facts: map[string]UnitFacts{
			"ollama.socket":  active("ollama.socket", keptBy("alice/ollama.socket")...),
			"ollama.service": active("ollama.service", keptBy("alice/ollama.service", "bob/ollama.service")...),
		}}
}

func TestYieldClaimsAndStopsSocketFirst(t *testing.T) {
	p := PlanYield(yieldIn())
	if p.Refused != nil || len(p.Write) != 2 || strings.Join(p.Stop, " ") != "ollama.socket ollama.service" {
		t.Fatalf("%+v", p)
	}
	for _, c := range p.Write {
		if c.Method != claim.ByCondition || c.Prior.ActiveState != "active" || c.User != "alice" || c.Service != "ollama" {
			t.Errorf("claim %+v", c)
		}
	}
}

func TestYieldRefusesDependentsThePolicyDoesNotName(t *testing.T) {
	in := yieldIn()
	in.Dependents = []Dependent{{Unit: "webui.service", Of: "ollama.service", Via: "ollama.service"}, {Unit: "proxy.service", Of: "ollama.service", Via: "webui.service"}}
	in.Facts["webui.service"] = active("webui.service")
	in.Facts["proxy.service"] = active("proxy.service")
	in.Authority.Policy.Yield["webui.service"] = []string{"alice"}
	p := PlanYield(in)
	if p.Refused == nil || strings.Join(p.Refused.Units, " ") != "proxy.service" || len(p.Write) != 0 || len(p.Stop) != 0 {
		t.Fatalf("%+v", p)
	}
	for _, want := range []string{"would also stop proxy.service (it depends on webui.service)", "nothing was changed"} {
		if !strings.Contains(p.Refused.Says, want) {
			t.Errorf("%q lacks %q", p.Refused.Says, want)
		}
	}
	if p.Refused.NixOS != `services.portclaim.yield."proxy.service".users = [ "alice" ];` {
		t.Errorf("line %q", p.Refused.NixOS)
	}

	// With the dependents in the policy, they yield too, deepest first,
	// and are recorded as stopped with ollama.service.
	in.Authority.Policy.Yield["proxy.service"] = []string{"alice"}
	p = PlanYield(in)
	if p.Refused != nil || strings.Join(p.Stop, " ") != "proxy.service webui.service ollama.socket ollama.service" {
		t.Fatalf("%+v", p)
	}
	for _, c := range p.Write {
		if (c.Unit == "webui.service" || c.Unit == "proxy.service") != (c.With == "ollama.service") {
			t.Errorf("%s recorded as stopped with %q", c.Unit, c.With)
		}
	}
}

func TestSecondUserInheritsTheFirstClaimsPrior(t *testing.T) {
	in := yieldIn()
	in.User, in.Asked = "bob", []string{"ollama.service"}
	f := in.Facts["ollama.service"]
	f.Unit.ActiveState = "inactive" // alice's claim keeps it down
	f.Records = []claim.Record{record("alice", "ollama.service", 50, "active")}
	in.Facts["ollama.service"] = f
	p := PlanYield(in)
	if len(p.Write) != 1 || p.Write[0].Prior.ActiveState != "active" || len(p.Stop) != 0 {
		t.Fatalf("bob's claim: %+v", p)
	}
}

func TestYieldConvergesAndCancelsARelease(t *testing.T) {
	in := yieldIn()
	f := in.Facts["ollama.service"]
	f.Records = []claim.Record{record("alice", "ollama.service", 50, "active")}
	in.Facts["ollama.service"] = f
	s := in.Facts["ollama.socket"]
	r := record("alice", "ollama.socket", 50, "active")
	r.Releasing = true
	s.Records = []claim.Record{r}
	in.Facts["ollama.socket"] = s
	p := PlanYield(in)
	if strings.Join(p.Already, " ") != "ollama.socket ollama.service" || strings.Join(p.CancelRelease, " ") != "ollama.socket" || len(p.Write) != 1 ||
		p.Write[0].Unit != "ollama.socket" || !p.Write[0].ClaimedAt.Equal(time.Unix(50, 0)) {
		t.Fatalf("%+v", p)
	}
}

func TestUnreadableRecordBlocksAnyChange(t *testing.T) {
	in := yieldIn()
	f := in.Facts["ollama.service"]
	f.Records = []claim.Record{{User: "bob", Unit: "ollama.service", Problem: "bob/ollama.service: not a whole claim record"}}
	in.Facts["ollama.service"] = f
	if p := PlanYield(in); p.Refused == nil || !strings.Contains(p.Refused.Says, "not a whole claim record") || len(p.Stop) != 0 {
		t.Fatalf("%+v", p)
	}
}

func TestRootMasksWhatHasNoCondition(t *testing.T) {
	in := yieldIn()
	in.Authority = Authority{Root: true}
	in.Asked = []string{"sshd.service"}
	in.Facts["sshd.service"] = active("sshd.service")
	p := PlanYield(in)
	if p.Refused != nil || strings.Join(p.Mask, " ") != "sshd.service" || p.Write[0].Method != claim.ByTransientMask {
		t.Fatalf("%+v", p)
	}
	in.Authority = Authority{Policy: &policy.Policy{Yield: map[string][]string{"sshd.service": {"alice"}}}}
	p = PlanYield(in)
	if len(p.Mask) != 0 || p.Write[0].Method != claim.ByNothing || !strings.Contains(p.Warnings[0], "starts again at boot") {
		t.Fatalf("a policy unit without its condition: %+v", p)
	}
}

func releaseIn(entries ...claim.Record) ReleaseInput {
	return ReleaseInput{User: "alice", Entries: entries, Facts: map[string]UnitFacts{}}
}

func stopped(name string, records ...claim.Record) UnitFacts {
	return UnitFacts{Unit: host.Unit{Name: name, ActiveState: "inactive", LoadState: "loaded"}, Records: records}
}

func TestReleaseDecisions(t *testing.T) {
	mine := record("alice", "ollama.service", 50, "active")
	in := releaseIn(mine)
	in.Facts["ollama.service"] = stopped("ollama.service", mine, record("bob", "ollama.service", 60, "active"))
	if st := PlanRelease(in)[0]; st.Action != RemoveOnly || !strings.Contains(st.Why, "bob's claim keeps it") {
		t.Errorf("another user's claim: %+v", st)
	}
	in.Facts["ollama.service"] = stopped("ollama.service", mine)
	if st := PlanRelease(in)[0]; st.Action != Restart {
		t.Errorf("the last claim: %+v", st)
	}
	in.Sockets = []host.Socket{{Endpoint: endpoint.Endpoint{Proto: endpoint.TCP, Port: 11434}, UID: 1000}}
	in.UID = 1000
	mine.Claim.Ports = []endpoint.Endpoint{{Proto: endpoint.TCP, Port: 11434}}
	in.Entries = []claim.Record{mine}
	in.HolderOf = func(host.Socket) string { return "user alice's podman-local-ai-ollama.service" }
	if st := PlanRelease(in)[0]; st.Action != Defer || !strings.Contains(st.Why, "11434/tcp is still held at *:11434 by user alice's podman-local-ai-ollama.service") {
		t.Errorf("port still held: %+v", st)
	}
	// Reconcile gives back a claim the policy no longer allows even while
	// the user's socket is there; a release starts the unit whatever else
	// holds the port (a bystander's socket is no reason to keep it down:
	// if its start fails, its record says so).
	in.Stale = true
	// Its start will likely fail: the step carries who holds the port,
	// for the failure to name.
	if st := PlanRelease(in)[0]; st.Action != Restart || !strings.Contains(st.InTheWay, "11434/tcp is still held at *:11434 by user alice's podman-local-ai-ollama.service") {
		t.Errorf("stale claim, port held by its user: %+v", st)
	}
	in.Stale = false
	in.Sockets[0].UID = 0
	if st := PlanRelease(in)[0]; st.Action != Restart {
		t.Errorf("port held by a bystander: %+v", st)
	}
	in.Conflicting = map[string][]string{"ollama.service": {"other.service"}}
	if st := PlanRelease(in)[0]; st.Action != Defer || !strings.Contains(st.Why, "starting it would stop other.service (Conflicts=)") {
		t.Errorf("a start that would stop a conflicting unit: %+v", st)
	}
	in.Conflicting = nil
	in.Sockets = nil
	notBefore := record("alice", "ollama.service", 50, "inactive")
	in.Entries = []claim.Record{notBefore}
	if st := PlanRelease(in)[0]; st.Action != RemoveOnly || !strings.Contains(st.Why, "inactive before the first claim") {
		t.Errorf("not running before: %+v", st)
	}
	in.Entries = []claim.Record{{User: "alice", Unit: "ollama.service", Problem: "truncated"}}
	if st := PlanRelease(in)[0]; st.Action != Keep {
		t.Errorf("unreadable: %+v", st)
	}
}

func TestReleaseOrderAndDependents(t *testing.T) {
	svc := record("alice", "ollama.service", 50, "active")
	sock := record("alice", "ollama.socket", 50, "active")
	dep := record("alice", "webui.service", 50, "active")
	dep.Claim.With = "ollama.service"
	in := releaseIn(dep, svc, sock)
	in.Facts["ollama.service"] = stopped("ollama.service", svc)
	in.Facts["ollama.socket"] = stopped("ollama.socket", sock)
	in.Facts["webui.service"] = stopped("webui.service", dep)
	var got []string
	for _, st := range PlanRelease(in) {
		got = append(got, st.Entry.Unit+":"+string(st.Action))
	}
	if strings.Join(got, " ") != "ollama.socket:start ollama.service:start webui.service:start" {
		t.Errorf("order %v", got)
	}
	// bob's claim keeps ollama.service down: its dependent waits, keeping
	// its record, rather than start into a missing dependency.
	in.Facts["ollama.service"] = stopped("ollama.service", svc, record("bob", "ollama.service", 70, "active"))
	steps := PlanRelease(in)
	if st := steps[2]; st.Entry.Unit != "webui.service" || st.Action != Defer || !strings.Contains(st.Why, "needs ollama.service") {
		t.Errorf("dependent of a unit that stays down: %+v", st)
	}

	// A yield rolled back after its stop was canceled: ollama.service
	// runs (its record only goes), and the dependent stopped with it
	// comes back, rather than wait for a unit that is up.
	in.Facts["ollama.service"] = active("ollama.service")
	steps = PlanRelease(in)
	if st := steps[2]; st.Entry.Unit != "webui.service" || st.Action != Restart {
		t.Errorf("dependent of a unit that runs: %+v", st)
	}
}

func TestStale(t *testing.T) {
	pol := &policy.Policy{Yield: map[string][]string{"ollama.service": {"alice"}}}
	e := record("alice", "ollama.service", 1, "active")
	if Stale(e, pol, true) != "" {
		t.Error("an allowed claim is stale")
	}
	if s := Stale(e, pol, false); !strings.Contains(s, "no longer exists") {
		t.Error(s)
	}
	e2 := record("bob", "ollama.service", 1, "active")
	if s := Stale(e2, pol, true); !strings.Contains(s, "no longer lets ollama.service yield to bob") {
		t.Error(s)
	}
	e2.Claim.Method = claim.ByTransientMask
	if Stale(e2, pol, true) != "" {
		t.Error("root's mask is stale while its user exists")
	}
}

func TestRootsMaskGoesWithTheLastMaskRecord(t *testing.T) {
	mask := record("alice", "x.service", 50, "active")
	mask.Claim.Method = claim.ByTransientMask
	in := releaseIn(mask)
	in.Facts["x.service"] = stopped("x.service", mask, record("bob", "x.service", 60, "active"))
	if st := PlanRelease(in)[0]; st.Action != RemoveOnly || !st.Unmask {
		t.Errorf("root's mask must go with alice's record, bob's condition keeps the unit down: %+v", st)
	}
	other := record("carol", "x.service", 70, "active")
	other.Claim.Method = claim.ByTransientMask
	in.Facts["x.service"] = stopped("x.service", mask, other)
	if st := PlanRelease(in)[0]; st.Unmask {
		t.Errorf("carol's mask record still needs the mask: %+v", st)
	}
}

func TestYieldDuringAFailedReleaseRestoresTheRecord(t *testing.T) {
	in := yieldIn()
	in.Asked = []string{"ollama.service"}
	r := record("alice", "ollama.service", 50, "active")
	r.Releasing = true
	r.Claim.Release = &claim.Release{Attempts: 2, LastError: "start failed"}
	f := in.Facts["ollama.service"]
	f.Unit.ActiveState = "failed"
	f.Records = []claim.Record{r}
	in.Facts["ollama.service"] = f
	p := PlanYield(in)
	if len(p.Write) != 1 || p.Write[0].Prior.ActiveState != "active" || p.Write[0].Release != nil || !p.Write[0].ClaimedAt.Equal(time.Unix(50, 0)) {
		t.Fatalf("the record must come back as it was, not record the failed state: %+v", p.Write)
	}
	if strings.Join(p.CancelRelease, " ") != "ollama.service" {
		t.Errorf("%+v", p)
	}
}

func TestYieldWaitsForQueuedJobs(t *testing.T) {
	in := yieldIn()
	in.Queued = []string{"webui.service"}
	if p := PlanYield(in); p.Refused == nil || !strings.Contains(p.Refused.Says, "jobs queued for webui.service") || len(p.Stop) != 0 {
		t.Fatalf("%+v", p)
	}
}

// TestAnotherUsersReleaseUnderWayCarriesThePrior: alice's release failed
// (her record is in .releasing, the unit failed); bob's claim now must
// record the state before alice's first claim, not "failed".
func TestAnotherUsersReleaseUnderWayCarriesThePrior(t *testing.T) {
	in := yieldIn()
	in.User, in.Asked = "bob", []string{"ollama.service"}
	alice := record("alice", "ollama.service", 50, "active")
	alice.Releasing = true
	f := in.Facts["ollama.service"]
	f.Unit.ActiveState = "failed"
	f.Records = []claim.Record{alice}
	in.Facts["ollama.service"] = f
	if p := PlanYield(in); len(p.Write) != 1 || p.Write[0].Prior.ActiveState != "active" {
		t.Fatalf("%+v", p.Write)
	}
}

func TestReleaseWaitsForQueuedJobs(t *testing.T) {
	mine := record("alice", "ollama.service", 50, "active")
	in := releaseIn(mine)
	in.Facts["ollama.service"] = stopped("ollama.service", mine)
	in.Queued = map[string][]string{"ollama.service": {"helper.service"}}
	if st := PlanRelease(in)[0]; st.Action != Defer || !strings.Contains(st.Why, "jobs queued for helper.service") {
		t.Errorf("%+v", st)
	}
}

// TestYieldRefusesDependentsThatCannotBeClaimed: a stop that would take
// along a unit no claim can name (a .mount, a .target) is refused before
// anything is written, for root too, naming it.
func TestYieldRefusesDependentsThatCannotBeClaimed(t *testing.T) {
	for _, root := range []bool{false, true} {
		in := yieldIn()
		in.Authority.Root = root
		in.Dependents = []Dependent{{Unit: "data.mount", Of: "ollama.service", Via: "ollama.service"}}
		in.Facts["data.mount"] = active("data.mount")
		in.Authority.Policy.Yield["data.mount"] = []string{"alice"} // not that a policy can say so
		p := PlanYield(in)
		if p.Refused == nil || len(p.Write) != 0 || len(p.Stop) != 0 {
			t.Fatalf("root %v: %+v", root, p)
		}
		for _, want := range []string{"would also stop data.mount (it depends on ollama.service)", "only .service and .socket units", "nothing was changed"} {
			if !strings.Contains(p.Refused.Says, want) {
				t.Errorf("root %v: %q lacks %q", root, p.Refused.Says, want)
			}
		}
	}
}

// TestYieldRefusesWhatItsStopsWouldStart: a unit the stop starts
// (OnSuccess=, OnFailure=) is refused as a dependent is, with the line
// that allows it; what such a start would do that nothing records is
// refused with no line to add.
func TestYieldRefusesWhatItsStopsWouldStart(t *testing.T) {
	in := yieldIn()
	in.Triggered = []Triggered{{Unit: "hook.service", By: "ollama.service", Via: "OnSuccess"}}
	p := PlanYield(in)
	if p.Refused == nil || len(p.Write) > 0 || !strings.Contains(p.Refused.Says, "would start hook.service (OnSuccess= of ollama.service), which the policy does not let yield to alice") ||
		p.Refused.NixOS != `services.portclaim.yield."hook.service".users = [ "alice" ];` {
		t.Fatalf("%+v %+v", p, p.Refused)
	}
	in.Authority.Policy.Yield["hook.service"] = []string{"alice"}
	if p := PlanYield(in); p.Refused != nil {
		t.Fatalf("a hook the policy names: %+v", p.Refused)
	}
	in.TriggerProblems = []string{"stop victim.service (Conflicts=), which hook.service (OnSuccess= of ollama.service) would start"}
	if p := PlanYield(in); p.Refused == nil || p.Refused.NixOS != "" || !strings.Contains(p.Refused.Says, "would stop victim.service") || len(p.Write) > 0 {
		t.Fatalf("a hook that would stop another unit: %+v", p)
	}
}

// TestReleaseLeavesOutWhatThePolicyDoesNotName: a Wants= the policy does
// not name is left out (each unit along started alone, in order); a
// Requires= it does not name defers the release.
func TestReleaseLeavesOutWhatThePolicyDoesNotName(t *testing.T) {
	in := releaseIn(record("alice", "qdrant.service", 1, "active"))
	in.Facts["qdrant.service"] = stopped("qdrant.service", record("alice", "qdrant.service", 1, "active"))
	in.Reach = map[string]StartReach{"qdrant.service": {Along: []string{"qdrant.service", "loader.service"}, Skipped: []string{"extra.service"}}}
	st := PlanRelease(in)
	if len(st) != 1 || st[0].Action != Restart || strings.Join(st[0].Each, " ") != "qdrant.service loader.service" || strings.Join(st[0].Without, " ") != "extra.service" {
		t.Fatalf("%+v", st)
	}
	in.Reach["qdrant.service"] = StartReach{Along: []string{"qdrant.service"}}
	if st := PlanRelease(in); st[0].Action != Restart || len(st[0].Each) != 0 {
		t.Fatalf("nothing to leave out: a start with job mode replace: %+v", st)
	}
	in.Reach["qdrant.service"] = StartReach{Along: []string{"qdrant.service"}, Skipped: []string{"extra.service"}, Needed: []string{"req.service (Requires= of qdrant.service)"}}
	if st := PlanRelease(in); st[0].Action != Defer || !strings.Contains(st[0].Why, "would also start req.service (Requires= of qdrant.service)") {
		t.Fatalf("%+v", st)
	}
}

// TestYieldDropsAGiveBackAskedBefore: a claim asked back and deferred,
// asked to yield again, stays, without the give-back.
func TestYieldDropsAGiveBackAskedBefore(t *testing.T) {
	in := yieldIn()
	asked := record("alice", "ollama.service", 50, "active")
	asked.Claim.GiveBack = &claim.GiveBack{AskedAt: time.Unix(60, 0), Why: "11434/tcp is still held"}
	f := in.Facts["ollama.service"]
	f.Records = []claim.Record{asked}
	in.Facts["ollama.service"] = f
	p := PlanYield(in)
	var kept *claim.Claim
	for i, c := range p.Write {
		if c.Unit == "ollama.service" {
			kept = &p.Write[i]
		}
	}
	if p.Refused != nil || kept == nil || kept.GiveBack != nil || !kept.ClaimedAt.Equal(time.Unix(50, 0)) || !slices.Contains(p.Already, "ollama.service") {
		t.Fatalf("%+v", p)
	}
}
