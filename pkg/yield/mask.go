package yield

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/portclaim/portclaim/pkg/actionlog"
)

// mask links /run/systemd/transient/<unit> to /dev/null (root mode).
func (s *Service) mask(unit, who string) error {
	if s.Places.Masked(unit) {
		return nil
	}
	link := filepath.Join(s.Places.TransientDir, unit)
	if err := os.MkdirAll(s.Places.TransientDir, 0o755); err != nil {
		return err
	}
	if err := os.Symlink("/dev/null", link); err != nil {
		return fmt.Errorf("masking %s: %w", unit, err)
	}
	s.Log.Add(actionlog.Entry{Action: "mask", Unit: unit, User: who, Result: "done", Msg: link + " -> /dev/null"})
	return nil
}

// unmask removes only a /dev/null link portclaim could have made.
func (s *Service) unmask(unit, who string) bool {
	if !s.Places.Masked(unit) {
		return false
	}
	link := filepath.Join(s.Places.TransientDir, unit)
	if err := os.Remove(link); err != nil {
		return false
	}
	s.Log.Add(actionlog.Entry{Action: "unmask", Unit: unit, User: who, Result: "done", Msg: link})
	return true
}
