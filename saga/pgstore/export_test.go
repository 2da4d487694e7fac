package pgstore

// Abandon stops the store as if its process had died: the lease is no
// longer renewed, nothing is handed back, and every later call fails.
func (s *Store) Abandon() { s.shut() }

// Pause stops renewing the lease, as in a process that has stopped
// running for a while; the store still answers calls.
func (s *Store) Pause() { s.stopRenewing() }

// OptionsOf returns the options s was opened with, defaults filled in.
func OptionsOf(s *Store) Options { return s.opts }

// Renew does now what the renewal loop does at each tick: it renews the
// lease, then prunes.
func (s *Store) Renew() error {
	if err := s.renew(); err != nil {
		return err
	}
	return s.prune()
}

// PruneBatch is the most rows of each kind one pass of prune removes.
const PruneBatch = pruneBatch
