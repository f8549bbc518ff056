package yield

import (
	"context"

	"github.com/portclaim/portclaim/pkg/claim"
	"github.com/portclaim/portclaim/pkg/protocol"
)

// rollback gives back the claims this run wrote, after a later step
// failed: the units it stopped start again before their records go. It
// has a budget of its own: the step that failed may have used the work's.
func (s *Service) rollback(ctx context.Context, who string, written []claim.Claim, outcome map[string]*protocol.UnitResult) {
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
			if outcome[u].Outcome != protocol.Failed {
				outcome[u].Outcome, outcome[u].Detail = protocol.Failed, "rolling back: "+err.Error()
			}
		}
		return
	}
	for _, r := range rel.Units {
		o := outcome[r.Unit]
		if o == nil || o.Outcome == protocol.Failed {
			continue
		}
		switch r.Outcome {
		case protocol.Restarted, protocol.Removed:
			o.Outcome, o.Detail = protocol.RolledBack, "given back because another step failed: "+r.Detail
		default:
			o.Outcome, o.Detail = protocol.Failed, "rolling back: "+string(r.Outcome)+": "+r.Detail
		}
	}
}
