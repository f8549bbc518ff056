package yield

// Hooks are where the end-to-end tests step in between two of a run's
// changes: to change the system there and see the run notice, or to kill
// the run there and see the next one converge. The points:
//
//   - Pause("before-stop", unit): a yield's claims are written, and
//     unit's stop is next (what it takes along is read again first);
//   - Crash("after-claim"): a yield's claims are written, and nothing is
//     masked or stopped yet;
//   - Crash("after-begin-release"): a release moved a record aside (the
//     condition lets the unit start), and the unit is not started yet.
//
// Either may be nil. A production build installs none: only portclaim
// built for the end-to-end tests (build tag e2e) does, from its
// environment (package testhooks).
type Hooks struct {
	Pause func(point, unit string)
	Crash func(point string)
}

// testHooks are what SetTestHooks installed, for every Service without
// hooks of its own.
var testHooks Hooks

// SetTestHooks installs hooks for every Service without its own. Only
// the end-to-end tests' build of portclaim calls it, before anything
// runs.
func SetTestHooks(h Hooks) { testHooks = h }

func (s *Service) hooks() Hooks {
	if s.Hooks != nil {
		return *s.Hooks
	}
	return testHooks
}

// pause holds the run before the step point on unit, as the hooks ask.
func (s *Service) pause(point, unit string) {
	if h := s.hooks().Pause; h != nil {
		h(point, unit)
	}
}

// crash lets the hooks end the process at point.
func (s *Service) crash(point string) {
	if h := s.hooks().Crash; h != nil {
		h(point)
	}
}
