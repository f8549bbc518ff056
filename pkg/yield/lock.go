package yield

import (
	"context"
	"fmt"

	"github.com/portclaim/portclaim/pkg/claimstore"
)

// lock takes the store's lock and, holding it, the policy as it is now.
func (s *Service) lock(ctx context.Context) (func(), error) {
	unlock, err := s.lockStore(ctx)
	if err != nil {
		return nil, err
	}
	if s.Policy != nil && !s.Authority.Root {
		pol, problem := s.Policy()
		if pol == nil {
			unlock()
			return nil, fmt.Errorf("%s", problem)
		}
		if pol.ClaimsDir != s.Store.Dir {
			unlock()
			return nil, fmt.Errorf("the policy's claims directory changed to %s; ask again", pol.ClaimsDir)
		}
		s.Authority.Policy = pol
	}
	return unlock, nil
}

// lockStore takes the store's lock, once no records wait to be moved
// into or out of it: a record written where the move has passed would
// be one no condition sees, a release there one of nothing.
func (s *Service) lockStore(ctx context.Context) (func(), error) {
	unlock, err := s.Store.Lock(ctx)
	if err != nil || s.Note == "" {
		return unlock, err
	}
	from, err := claimstore.Moving(s.Note, s.Store.Dir)
	if err == nil && from != "" {
		err = fmt.Errorf("the claims are in %s, not in %s: the claims directory is being moved (portclaim-move-claims.service; `journalctl -u portclaim-move-claims`); ask again in a moment", from, s.Store.Dir)
	}
	if err != nil {
		unlock()
		return nil, err
	}
	return unlock, nil
}
