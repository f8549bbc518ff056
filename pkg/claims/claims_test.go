package claims

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWriteListRemove(t *testing.T) {
	dir := t.TempDir()
	c := Claim{Version: 1, User: "alice", Unit: "ollama.service", Service: "ollama", Ports: []Port{{Port: 11434, Protocol: "tcp"}},
		ClaimedAt: time.Unix(0, 0).UTC(), Method: ByCondition, Prior: Prior{ActiveState: "active", UnitFileState: "enabled"}}
	if err := Write(dir, c); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "ollama.service"))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("claim file: %v %v", fi, err)
	}
	os.WriteFile(filepath.Join(dir, ".claim-leftover"), nil, 0o600)
	got, err := List(dir)
	if err != nil || len(got) != 1 || got[0].Service != "ollama" || !got[0].Prior.WasActive() {
		t.Fatalf("List = %+v, %v", got, err)
	}
	if err := Remove(dir, "ollama.service"); err != nil {
		t.Fatal(err)
	}
	if err := Remove(dir, "ollama.service"); err != nil {
		t.Fatalf("removing twice: %v", err)
	}
	if got, _ := List(dir); len(got) != 0 {
		t.Fatalf("after Remove: %+v", got)
	}
}

func TestUnitNamesAreValidatedBeforeUse(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, Claim{Unit: "../escape.service"}); err == nil {
		t.Fatal("wrote a claim outside its directory")
	}
	if err := Remove(dir, "../../etc/passwd"); err == nil {
		t.Fatal("removed a path outside the claims directory")
	}
}

func TestForeignFileStillCounts(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "qdrant.service"), nil, 0o644) // `touch`ed by an admin
	got, err := List(dir)
	if err != nil || len(got) != 1 || got[0].Unit != "qdrant.service" {
		t.Fatalf("List = %+v, %v", got, err)
	}
}

func TestLockExcludes(t *testing.T) {
	dir := t.TempDir()
	unlock, err := Lock(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(dir, 100*time.Millisecond); err == nil {
		t.Fatal("second lock succeeded while the first is held")
	}
	unlock()
	unlock2, err := Lock(dir, time.Second)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock2()
}
