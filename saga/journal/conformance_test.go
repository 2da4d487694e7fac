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
	conformance(t, journal.Open)
}

// TestConformanceSpilling runs the suite on a journal that writes each
// finished instance to a run at once.
func TestConformanceSpilling(t *testing.T) {
	t.Parallel()
	conformance(t, func(dir string, opts journal.Options) (*journal.Journal, error) {
		return journal.OpenSpilling(dir, opts, 1)
	})
}

// conformance runs the store conformance suite on journals that openFn
// opens.
func conformance(t *testing.T, openFn func(string, journal.Options) (*journal.Journal, error)) {
	var mu sync.Mutex
	dirs := map[saga.Store]string{}
	openStore := func(t *testing.T, dir string) saga.Store {
		j, err := openFn(dir, journal.Options{Logger: quiet})
		require.NoError(t, err)
		t.Cleanup(func() { _ = j.Close() })
		mu.Lock()
		defer mu.Unlock()
		dirs[j] = dir
		return j
	}
	sagatest.Run(t, func(t *testing.T) saga.Store {
		return openStore(t, t.TempDir())
	}, sagatest.Capabilities{
		Reopen: func(t *testing.T, s saga.Store) saga.Store {
			require.NoError(t, s.Close())
			mu.Lock()
			dir := dirs[s]
			mu.Unlock()
			return openStore(t, dir)
		},
	})
}
