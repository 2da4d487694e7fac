package pgstore_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/pgstore"
	"github.com/sagaflow/sagaflow/saga/sagatest"
)

func TestConformance(t *testing.T) {
	db := database(t)
	// Handles on one schema stand for processes sharing a database; they
	// share the fake clock of the first.
	var mu sync.Mutex
	handles := map[string][]*pgstore.Store{} // by schema
	track := func(s *pgstore.Store) *pgstore.Store {
		mu.Lock()
		defer mu.Unlock()
		schema := pgstore.OptionsOf(s).Schema
		handles[schema] = append(handles[schema], s)
		return s
	}
	another := func(t *testing.T, s saga.Store) *pgstore.Store {
		opts := pgstore.OptionsOf(s.(*pgstore.Store))
		opts.Node = ""
		other, err := pgstore.Open(t.Context(), db, opts)
		require.NoError(t, err)
		t.Cleanup(func() { other.Close() })
		return track(other)
	}
	sagatest.Run(t, func(t *testing.T) saga.Store {
		c := &cluster{t: t, db: db, schema: newSchema(t, db), clock: newFakeClock()}
		return track(c.open(""))
	}, sagatest.Capabilities{
		Reopen: func(t *testing.T, s saga.Store) saga.Store {
			require.NoError(t, s.Close())
			return another(t, s)
		},
		Share: func(t *testing.T, s saga.Store) saga.Store { return another(t, s) },
		Expire: func(t *testing.T, s saga.Store) {
			paused := s.(*pgstore.Store)
			paused.Pause()
			opts := pgstore.OptionsOf(paused)
			opts.Clock.(*clock.Fake).Advance(leaseTTL + 1)
			mu.Lock()
			others := handles[opts.Schema]
			mu.Unlock()
			for _, h := range others {
				if h != paused && h.Ping(t.Context()) != saga.ErrClosed {
					require.NoError(t, h.Renew(), "renew the lease of a live handle")
				}
			}
		},
	})
}
