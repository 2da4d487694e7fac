package pgstore_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/pgstore"
)

func TestOpenRejectsBadOptions(t *testing.T) {
	db := database(t)
	for name, opts := range map[string]pgstore.Options{
		"upper case schema": {Schema: "Sagas"},
		"quote in schema":   {Schema: `x"; DROP TABLE y; --`},
		"leading digit":     {Schema: "1sagas"},
		"negative lease":    {LeaseTTL: -1},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := pgstore.Open(t.Context(), db, opts)
			assert.ErrorIs(t, err, saga.ErrInvalidArgument)
		})
	}
	_, err := pgstore.Open(t.Context(), nil, pgstore.Options{})
	assert.ErrorIs(t, err, saga.ErrInvalidArgument, "nil db")
}

func TestMigrationsOnceWhenProcessesStartTogether(t *testing.T) {
	c := newCluster(t)
	var wg sync.WaitGroup
	stores := make([]*pgstore.Store, 8)
	errs := make([]error, len(stores))
	for i := range stores {
		wg.Go(func() {
			stores[i], errs[i] = pgstore.Open(t.Context(), c.db, pgstore.Options{Schema: c.schema, Clock: c.clock})
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "open %d", i)
		defer stores[i].Close()
	}
	var versions, latest int
	require.NoError(t, c.db.QueryRowContext(t.Context(),
		`SELECT count(*), max(version) FROM "`+c.schema+`".migrations`).Scan(&versions, &latest))
	assert.Equal(t, pgstore.Version(), versions, "each migration applied once")
	assert.Equal(t, pgstore.Version(), latest)

	// Opening again changes nothing.
	s := c.open("")
	require.NoError(t, c.db.QueryRowContext(t.Context(),
		`SELECT count(*) FROM "`+c.schema+`".migrations`).Scan(&versions))
	assert.Equal(t, pgstore.Version(), versions)
	assert.NoError(t, s.Ping(t.Context()))
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	c := newCluster(t)
	c.open("")
	_, err := c.db.ExecContext(t.Context(), `INSERT INTO "`+c.schema+`".migrations (version) VALUES ($1)`, pgstore.Version()+1)
	require.NoError(t, err)
	_, err = pgstore.Open(t.Context(), c.db, pgstore.Options{Schema: c.schema})
	assert.ErrorIs(t, err, pgstore.ErrSchemaTooNew)
}

func TestPingReportsExpiredLease(t *testing.T) {
	c := newCluster(t)
	s := c.open("")
	require.NoError(t, s.Ping(t.Context()))
	s.Pause()
	c.clock.Advance(leaseTTL)
	assert.ErrorContains(t, s.Ping(t.Context()), "lease")
}

func TestRestartUnderSameNodeTakesBackAtOnce(t *testing.T) {
	c := newCluster(t)
	first := c.open("node-1")
	events := []saga.Event{{SagaID: "order-1", Run: "r1", Seq: 1, Type: saga.EventSagaStarted, Definition: "orders", State: []byte(`{}`)}}
	require.NoError(t, first.Create(t.Context(), events))
	first.Abandon() // dies without handing anything back

	second := c.open("node-1")
	ids, err := second.Claim(t.Context(), "orders", 10)
	require.NoError(t, err)
	assert.Equal(t, []string{"order-1"}, ids, "claimed without waiting for the lease to expire")
	next := []saga.Event{{SagaID: "order-1", Run: "r1", Seq: 2, Type: saga.EventStepStarted, Step: "a", Attempt: 1}}
	assert.NoError(t, second.Append(t.Context(), "order-1", 1, next))
	assert.ErrorIs(t, first.Append(context.Background(), "order-1", 1, next), saga.ErrClosed)
}

func TestForwardRejectsBadInput(t *testing.T) {
	c := newCluster(t)
	s := c.open("")
	for name, sig := range map[string]saga.ForwardedSignal{
		"no saga": {Name: "paid"},
		"no name": {SagaID: "order-1"},
	} {
		assert.ErrorIs(t, s.Forward(t.Context(), sig), saga.ErrInvalidArgument, name)
	}
	require.NoError(t, s.Close())
	assert.ErrorIs(t, s.Forward(t.Context(), saga.ForwardedSignal{SagaID: "order-1", Name: "paid"}), saga.ErrClosed)
	_, err := s.Inbox(t.Context(), "orders", 10)
	assert.ErrorIs(t, err, saga.ErrClosed)
	assert.ErrorIs(t, s.Delivered(t.Context(), []int64{1}), saga.ErrClosed)
}
