package journal

// OpenSpilling opens a journal whose index of finished instances writes a
// run every spillAt finished instances, in blocks of a few entries, and
// merges runs two at a time: the external tests run on it to go through
// the runs with a few instances.
func OpenSpilling(dir string, opts Options, spillAt int) (*Journal, error) {
	tune := defaultTuning
	tune.at, tune.fanIn, tune.block = spillAt, 2, 256
	return open(dir, opts, tune)
}
