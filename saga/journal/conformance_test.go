package journal_test

import (
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/journal"
	"github.com/sagaflow/sagaflow/saga/sagatest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// open opens a journal in dir and closes it when the test ends.
func open(t testing.TB, dir string, opts journal.Options) *journal.Journal {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	j, err := journal.Open(dir, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = j.Close() })
	return j
}

func TestConformance(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	dirs := map[saga.Store]string{}
	remember := func(s saga.Store, dir string) saga.Store {
		mu.Lock()
		defer mu.Unlock()
		dirs[s] = dir
		return s
	}
	sagatest.Run(t, func(t *testing.T) saga.Store {
		dir := t.TempDir()
		return remember(open(t, dir, journal.Options{}), dir)
	}, sagatest.Capabilities{
		Reopen: func(t *testing.T, s saga.Store) saga.Store {
			require.NoError(t, s.Close())
			mu.Lock()
			dir := dirs[s]
			mu.Unlock()
			return remember(open(t, dir, journal.Options{}), dir)
		},
	})
}
