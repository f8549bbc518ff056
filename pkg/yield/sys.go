package yield

import (
	"context"
	"time"

	"github.com/portclaim/portclaim/pkg/systemd"
)

// Systemd is what the root side asks of the system's service manager:
// *systemd.Manager on a machine. Declared here, with only what yield
// uses, so that the walk of the unit graph, the rollbacks and the
// releases can be tried against a model of units.
type Systemd interface {
	// Inspect reads a unit's state and the units a stop or start of it
	// reaches (systemd.Detail).
	Inspect(ctx context.Context, unit string) (systemd.Detail, error)
	// Stop and Start run one job with job mode replace and wait up to
	// wait for it to end ("" when it did not).
	Stop(ctx context.Context, unit string, wait time.Duration) (systemd.JobResult, error)
	Start(ctx context.Context, unit string, wait time.Duration) (systemd.JobResult, error)
	// StartEach starts exactly units, one ignore-requirements job each,
	// in that order.
	StartEach(ctx context.Context, units []string, wait time.Duration) ([]systemd.JobResult, error)
	// Reload is a daemon-reload.
	Reload(ctx context.Context) error
}

var _ Systemd = (*systemd.Manager)(nil)

// jobText says how a job ended, for the journal and for people: its
// result, "timeout" when it did not end in time, or the error.
func jobText(result systemd.JobResult, err error) string {
	switch {
	case err != nil:
		return err.Error()
	case result == "":
		return "timeout"
	}
	return string(result)
}
