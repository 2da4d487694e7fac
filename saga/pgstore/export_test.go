package pgstore

// Abandon stops the store as if its process had died: the lease is no
// longer renewed, nothing is handed back, and every later call fails.
func (s *Store) Abandon() { s.shut() }

// Pause stops renewing the lease, as in a process that has stopped
// running for a while; the store still answers calls.
func (s *Store) Pause() { s.stopRenewing() }

// OptionsOf returns the options s was opened with, defaults filled in.
func OptionsOf(s *Store) Options { return s.opts }

// Renew renews the lease now.
func (s *Store) Renew() error { return s.renew() }
