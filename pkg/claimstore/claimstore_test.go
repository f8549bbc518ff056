package claimstore

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portclaim/portclaim/pkg/claim"
	"github.com/portclaim/portclaim/pkg/endpoint"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs as root")
		}
		t.Skip("claims are root's: needs root")
	}
}

func record(user, unit string) claim.Claim {
	return claim.Claim{Version: claim.Version, User: user, Unit: unit, Service: "s",
		Ports:     []endpoint.Endpoint{{Proto: endpoint.TCP, Port: 11434}},
		ClaimedAt: time.Unix(1, 0).UTC(), Method: claim.ByCondition,
		Prior: claim.Prior{ActiveState: "active", UnitFileState: "enabled"}}
}

func newStore(t *testing.T) Store {
	dir := filepath.Join(t.TempDir(), "claims")
	os.Mkdir(dir, 0o755)
	return Store{Dir: dir}
}

func TestWriteListReleaseRemove(t *testing.T) {
	needRoot(t)
	s := newStore(t)
	if err := s.Write(record("alice", "ollama.service")); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(record("bob", "ollama.service")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(s.Dir, "alice", "ollama.service"))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("claim file: %v %v", fi, err)
	}
	list, err := s.List("alice")
	if err != nil || len(list) != 1 || list[0].Problem != "" || list[0].Claim.Service != "s" || list[0].Releasing {
		t.Fatalf("List = %+v, %v", list, err)
	}
	on, _ := s.OnUnit("ollama.service")
	if len(on) != 2 {
		t.Fatalf("OnUnit = %+v", on)
	}
	if all, err := s.Records(); err != nil || len(all) != 1 || len(all["ollama.service"]) != 2 || all["ollama.service"][0].User != "alice" {
		t.Fatalf("Records = %+v, %v", all, err)
	}

	c := list[0].Claim
	c.Release = &claim.Release{Began: time.Unix(2, 0).UTC(), Attempts: 1}
	if err := s.BeginRelease(c); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "alice", "ollama.service")); !os.IsNotExist(err) {
		t.Fatal("the condition's path still exists after BeginRelease")
	}
	list, _ = s.List("alice")
	if len(list) != 1 || !list[0].Releasing || list[0].Claim.Release == nil || list[0].Claim.Release.Attempts != 1 {
		t.Fatalf("after BeginRelease: %+v", list)
	}
	c.Release.LastError = "start failed"
	if err := s.UpdateRelease(c); err != nil {
		t.Fatal(err)
	}
	if list, _ = s.List("alice"); list[0].Claim.Release.LastError != "start failed" {
		t.Fatalf("UpdateRelease: %+v", list[0].Claim.Release)
	}
	if err := s.EndRelease("alice", "ollama.service"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("bob", "ollama.service"); err != nil {
		t.Fatal(err)
	}
	if on, _ := s.OnUnit("ollama.service"); len(on) != 0 {
		t.Fatalf("after release and remove: %+v", on)
	}
}

func TestRecordsNotRootsOrNotWholeAreReported(t *testing.T) {
	needRoot(t)
	s := newStore(t)
	if err := s.Write(record("alice", "a.service")); err != nil {
		t.Fatal(err)
	}
	dir := s.UserDir("alice")
	os.WriteFile(filepath.Join(dir, "b.service"), []byte(`{"version":2,"user":"alice"`), 0o644) // truncated
	os.WriteFile(filepath.Join(dir, "c.service"), claim.Encode(record("alice", "c.service")), 0o644)
	os.Chown(filepath.Join(dir, "c.service"), 1000, 1000) // forged by alice
	os.Symlink("/etc/shadow", filepath.Join(dir, "d.service"))
	os.WriteFile(filepath.Join(dir, "e.service"), claim.Encode(record("bob", "e.service")), 0o644) // someone else's record
	os.WriteFile(filepath.Join(dir, "poweroff.target"), nil, 0o644)                                // not a claim at all
	syscall.Mkfifo(filepath.Join(dir, "f.service"), 0o644)                                         // refused unopened (safeopen)
	os.WriteFile(filepath.Join(dir, "g.service"), make([]byte, maxRecord+1), 0o644)
	list, err := s.List("alice")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a.service": "", "b.service": "not a whole claim record", "c.service": "belongs to uid 1000",
		"d.service": "cannot read", "e.service": "not of its own place", "f.service": "not a regular file",
		"g.service": "larger than any claim record"}
	if len(list) != len(want) {
		t.Fatalf("List = %+v", list)
	}
	for _, e := range list {
		w := want[e.Unit]
		if (w == "") != (e.Problem == "") || !strings.Contains(e.Problem, w) {
			t.Errorf("%s: problem %q, want %q", e.Unit, e.Problem, w)
		}
	}

	// A user's directory that is not root's is believed in no part.
	os.Chown(dir, 1000, 1000)
	list, _ = s.List("alice")
	for _, e := range list {
		if !strings.Contains(e.Problem, "claims are root's") {
			t.Errorf("%s in alice's own directory: %q", e.Unit, e.Problem)
		}
	}
	if err := s.Write(record("alice", "f.service")); err == nil || !strings.Contains(err.Error(), "not writing claims") {
		t.Errorf("wrote into a directory alice owns: %v", err)
	}
}

func TestNamesAreValidatedBeforeUse(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	if err := s.Write(record("alice", "../escape.service")); err == nil {
		t.Fatal("wrote a claim outside its directory")
	}
	if err := s.Remove("../..", "passwd.service"); err == nil {
		t.Fatal("removed outside the claims directory")
	}
}

func TestLockExcludesAndIsRootsAlone(t *testing.T) {
	needRoot(t)
	s := newStore(t)
	unlock, err := s.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(filepath.Join(s.Dir, lockName))
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("lock mode %v: users could open it and hold it", fi.Mode())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := s.Lock(ctx); err == nil {
		t.Fatal("second lock taken while the first is held")
	}
	unlock()
	unlock2, err := s.Lock(context.Background())
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock2()
}

// TestMoveCarriesEveryRecordAndNotesIt: a new claims directory gets every
// record of the one served last, claims and releases under way, and the
// note names it; a record root did not write stays where it is, and so
// does the note, so that every reader still finds it.
func TestMoveCarriesEveryRecordAndNotesIt(t *testing.T) {
	needRoot(t)
	old := newStore(t)
	note := filepath.Join(t.TempDir(), "claims-dir")
	if err := os.WriteFile(note, []byte(old.Dir+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []claim.Claim{record("alice", "a.service"), record("bob", "a.service")} {
		if err := old.Write(c); err != nil {
			t.Fatal(err)
		}
	}
	r := record("alice", "b.service")
	if err := old.Write(r); err != nil {
		t.Fatal(err)
	}
	r.Release = &claim.Release{Attempts: 1}
	if err := old.BeginRelease(r); err != nil {
		t.Fatal(err)
	}
	next := Store{Dir: filepath.Join(t.TempDir(), "moved")}
	if from, err := Moving(note, next.Dir); err != nil || from != old.Dir {
		t.Fatalf("Moving = %q, %v", from, err)
	}
	if n, err := next.MoveTo(context.Background(), note); err != nil || n != 3 {
		t.Fatalf("MoveTo = %d, %v", n, err)
	}
	all, err := next.Records()
	if err != nil || len(all["a.service"]) != 2 || len(all["b.service"]) != 1 || !all["b.service"][0].Releasing || all["b.service"][0].Problem != "" {
		t.Fatalf("the records in the new directory: %+v, %v", all, err)
	}
	if left, _ := old.Records(); len(left) != 0 {
		t.Errorf("left in the old directory: %+v", left)
	}
	if served, err := Served(note); err != nil || served != next.Dir {
		t.Errorf("the note: %q, %v", served, err)
	}
	if from, err := Moving(note, next.Dir); err != nil || from != "" {
		t.Errorf("after the move, Moving = %q, %v", from, err)
	}

	// Back, with one record already there (a move killed after its
	// copy): it is the same record; the copy moved from goes.
	if err := old.Write(record("alice", "a.service")); err != nil {
		t.Fatal(err)
	}
	if n, err := old.MoveTo(context.Background(), note); err != nil || n != 3 {
		t.Errorf("the move back: %d, %v", n, err)
	}
	if _, err := os.Stat(filepath.Join(next.Dir, "alice", "a.service")); !os.IsNotExist(err) {
		t.Errorf("a record at both places stayed in the one moved from: %v", err)
	}
}

// TestMoveToAnotherFileSystemCopiesOnlyRootsRecords: across file systems
// a record is copied, as root's file; one root did not write stays where
// it is (its copy would be root's), and so does the note.
func TestMoveToAnotherFileSystemCopiesOnlyRootsRecords(t *testing.T) {
	needRoot(t)
	shm, err := os.MkdirTemp("/dev/shm", "claims-")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI needs a second file system for the move (/dev/shm): %v", err)
		}
		t.Skip("no /dev/shm")
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	old := newStore(t)
	note := filepath.Join(t.TempDir(), "claims-dir")
	os.WriteFile(note, []byte(old.Dir+"\n"), 0o644)
	for _, c := range []claim.Claim{record("alice", "a.service"), record("bob", "b.service")} {
		if err := old.Write(c); err != nil {
			t.Fatal(err)
		}
	}
	os.Chown(filepath.Join(old.Dir, "bob", "b.service"), 1001, -1)
	next := Store{Dir: filepath.Join(shm, "claims")}
	n, err := next.MoveTo(context.Background(), note)
	if n != 1 || err == nil || !strings.Contains(err.Error(), "b.service cannot be copied") {
		t.Fatalf("MoveTo = %d, %v", n, err)
	}
	if l, _ := next.List("alice"); len(l) != 1 || l[0].Problem != "" {
		t.Errorf("alice's record across file systems: %+v", l)
	}
	if _, err := os.Stat(filepath.Join(old.Dir, "bob", "b.service")); err != nil {
		t.Errorf("bob's record, not root's, did not stay: %v", err)
	}
	if served, _ := Served(note); served != old.Dir {
		t.Errorf("the note names %s with a record left in %s", served, old.Dir)
	}
}

// TestServedWithoutANoteIsTheDefault: a machine on a portclaim before the
// note kept its claims in the default directory.
func TestServedWithoutANoteIsTheDefault(t *testing.T) {
	if dir, err := Served(filepath.Join(t.TempDir(), "none")); err != nil || dir != "/var/lib/portclaim/claims" {
		t.Errorf("%q, %v", dir, err)
	}
}
