package e2e

// Trust II: each scenario is a hole in the invariant that a system unit is
// down only while a record that `status` shows and `release` can act on
// says why, and that no user action changes the state of a unit the
// policy does not let yield to that user (directly, by dependency, by
// trigger, or by what a start pulls in). Each reproduced the hole on a
// booted machine before its fix.

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func init() {
	for unit, users := range map[string][]string{
		"pc-t-pol.service":        {"alice"},
		"pc-t-mv.service":         {"alice"},
		"pc-t-mv2.service":        {"alice"},
		"pc-t-mv3.service":        {"alice"},
		"pc-t-hook-main.service":  {"alice"}, // but not pc-t-hook.service
		"pc-t-fail-main.service":  {"alice"}, // but not pc-t-onfail.service
		"pc-t-ok-main.service":    {"alice"},
		"pc-t-ok-hook.service":    {"alice"},
		"pc-t-q.service":          {"bob"}, // but not pc-t-extra.service
		"pc-t-q2.service":         {"bob"}, // but not pc-t-req.service
		"pc-t-q3.service":         {"bob"},
		"pc-t-q4.service":         {"bob"},
		"pc-t-q5.service":         {"bob"},
		"pc-t-fam.service":        {"alice"},
		"pc-t-fam-loader.service": {"alice"}, // but not pc-t-fam-extra.service
		"pc-t-probe.service":      {"bob"},
		"pc-t-own-sys.service":    {"alice"},
		"pc-t-defer.service":      {"alice"},
		"pc-t-defer2.service":     {"alice"},
		"pc-t-nss.service":        {"dave"},
		"pc-t-al.service":         {"alice"},
		"pc-t-alias.service":      {"bob"}, // an alias of pc-t-al.service
		"pc-t-flood.service":      {"alice"},
	} {
		yieldTo[unit] = users
	}
}

// dropIn adds a drop-in to unit until the test ends.
func dropIn(t *testing.T, ctx context.Context, unit, body string) {
	t.Helper()
	p := "/etc/systemd/system/" + unit + ".d/test.conf"
	if err := m.WriteFile(p, []byte(body), 0o644, ""); err != nil {
		t.Fatal(err)
	}
	must(t, ctx, "root", "systemctl", "daemon-reload")
	t.Cleanup(func() { os.Remove(filepath.Join(m.Root(), p)) })
}
