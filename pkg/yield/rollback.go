package yield

import (
	"context"

	"github.com/portclaim/portclaim/pkg/claim"
)

// rollback gives back the claims this run wrote, after a later step
// failed: the units it stopped start again before their records go. It
// has a budget of its own: the step that failed may have used the work's.
func (s *Service) rollback(ctx context.Context, who string, written []claim.Claim, outcome map[string]*UnitResult) {
	var units []string
	for _, c := range written {
		units = append(units, c.Unit)
	}
	if len(units) == 0 {
		return
	}
	ctx, cancel := s.work(ctx, len(units))
	defer cancel()
	rel, err := s.releaseUnits(ctx, who, units)
	if err != nil {
		for _, u := range units {
			if outcome[u].Outcome != Failed {
				outcome[u].Outcome, outcome[u].Detail = Failed, "rolling back: "+err.Error()
			}
		}
		return
	}
	for _, r := range rel.Units {
		o := outcome[r.Unit]
		if o == nil || o.Outcome == Failed {
			continue
		}
		switch r.Outcome {
		case Restarted, Removed:
			o.Outcome, o.Detail = RolledBack, "given back because another step failed: "+r.Detail
		default:
			o.Outcome, o.Detail = Failed, "rolling back: "+string(r.Outcome)+": "+r.Detail
		}
	}
}
