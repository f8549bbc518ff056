package claim

import (
	"strings"
	"testing"
	"time"

	"github.com/portclaim/portclaim/pkg/endpoint"
)

func sample() Claim {
	return Claim{Version: Version, User: "alice", Unit: "ollama.service", Service: "ollama",
		Ports:     []endpoint.Endpoint{{Proto: endpoint.TCP, Port: 11434}},
		ClaimedAt: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), Method: ByCondition,
		Prior: Prior{ActiveState: "active", UnitFileState: "enabled"}}
}

func TestRoundTrip(t *testing.T) {
	c := sample()
	c.Release = &Release{Began: c.ClaimedAt, Attempts: 1, LastError: "start job failed"}
	got, err := Decode(Encode(c))
	if err != nil || got.Unit != c.Unit || got.Ports[0] != c.Ports[0] || got.Release.LastError != "start job failed" || !got.Prior.WasActive() {
		t.Fatalf("%+v, %v", got, err)
	}
}

// TestTruncatedRecordIsNotAQuietState: whatever prefix of a record
// survives, Decode says it is broken rather than reading "not running".
func TestTruncatedRecordIsNotAQuietState(t *testing.T) {
	data := Encode(sample())
	for n := 0; n < len(data)-2; n++ {
		if c, err := Decode(data[:n]); err == nil {
			t.Fatalf("the first %d bytes decode as %+v", n, c)
		}
	}
}

// TestOlderVersionsAreRead: a record of portclaim 0.2 (version 2) and of
// 0.1 (version 1) are read; version 3 adds a release asked and deferred.
func TestOlderVersionsAreRead(t *testing.T) {
	for _, v := range []string{"1", "2"} {
		in := `{"version":` + v + `,"user":"alice","unit":"a.service","service":"x","ports":[],"claimedAt":"2026-11-27T10:00:00Z","method":"condition","prior":{"activeState":"active","unitFileState":""}}`
		if c, err := Decode([]byte(in)); err != nil || c.GiveBack != nil {
			t.Errorf("version %s: %+v, %v", v, c, err)
		}
	}
	c := sample()
	c.GiveBack = &GiveBack{AskedAt: c.ClaimedAt, Why: "11434/tcp is still held"}
	if got, err := Decode(Encode(c)); err != nil || got.GiveBack == nil || got.GiveBack.Why != c.GiveBack.Why || got.Version != 3 {
		t.Errorf("%+v, %v", got, err)
	}
}

func TestDecodeRefuses(t *testing.T) {
	for _, in := range []string{
		`{}`,
		`{"version":2,"user":"alice","unit":"poweroff.target","service":"x","ports":[],"claimedAt":"2026-11-27T10:00:00Z","method":"condition","prior":{"activeState":"active","unitFileState":""}}`,
		`{"version":2,"user":"alice smith","unit":"a.service","service":"x","ports":[],"claimedAt":"2026-11-27T10:00:00Z","method":"condition","prior":{"activeState":"active","unitFileState":""}}`,
		`{"version":2,"user":"alice","unit":"a.service","service":"x","ports":[{"port":70000,"protocol":"tcp","address":""}],"claimedAt":"2026-11-27T10:00:00Z","method":"condition","prior":{"activeState":"active","unitFileState":""}}`,
		`{"version":2,"user":"alice","unit":"a.service","service":"x","ports":[],"claimedAt":"2026-11-27T10:00:00Z","method":"condition","prior":{"activeState":"active","unitFileState":""},"evil":1}`,
		`{"version":9,"user":"alice","unit":"a.service","service":"x","ports":[],"claimedAt":"2026-11-27T10:00:00Z","method":"condition","prior":{"activeState":"active","unitFileState":""}}`,
		`{"version":2,"user":"alice","unit":"a.service","service":"x","ports":[],"claimedAt":"2026-11-27T10:00:00Z","method":"condition","prior":{"activeState":"active","unitFileState":""},"giveBack":{"askedAt":"2026-11-27T10:00:00Z","why":"x"}}`,
	} {
		if c, err := Decode([]byte(in)); err == nil {
			t.Errorf("%s decoded as %+v", in, c)
		} else if !strings.Contains(err.Error(), "claim record") {
			t.Errorf("message %q does not say what it read", err)
		}
	}
}
