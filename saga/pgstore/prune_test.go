package pgstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/pgstore"
	"github.com/sagaflow/sagaflow/saga/sagatest"
)

// count returns the number of rows of table in the cluster's schema that
// match where, whose arguments are args.
func (c *cluster) count(table, where string, args ...any) int {
	c.t.Helper()
	var n int
	err := c.db.QueryRowContext(context.Background(),
		`SELECT count(*) FROM "`+c.schema+`".`+table+` WHERE `+where, args...).Scan(&n)
	require.NoError(c.t, err)
	return n
}

// rowsOf counts the rows of node in the nodes and runners tables.
func (c *cluster) rowsOf(node string) (nodes, runners int) {
	c.t.Helper()
	return c.count("nodes", "node = $1", node), c.count("runners", "node = $1", node)
}

// signalsOf counts the signals queued for sagaID.
func (c *cluster) signalsOf(sagaID string) int {
	c.t.Helper()
	return c.count("signals", "saga_id = $1", sagaID)
}

// advance moves the clock on by d in steps of a quarter lease, renewing
// the live stores' leases (and so pruning) at each step, as their renewal
// loops would. It stops those loops first: a pass of a loop beside the
// one made here would lock rows that this one then skips, and its
// deletions might not have committed when the test counts the rows.
func (c *cluster) advance(d time.Duration, live ...*pgstore.Store) {
	c.t.Helper()
	for _, s := range live {
		s.Pause()
	}
	for end := c.clock.Now().Add(d); c.clock.Now().Before(end); {
		c.clock.Advance(min(leaseTTL/4, end.Sub(c.clock.Now())))
		for _, s := range live {
			require.NoError(c.t, s.Renew())
		}
	}
}

func startedEvent(sagaID string) saga.Event {
	return saga.Event{
		SagaID: sagaID, Run: "r1", Seq: 1, Type: saga.EventSagaStarted,
		Definition: "order", Version: 1, State: []byte(`{}`),
	}
}

func completedEvent(sagaID string, seq uint64) saga.Event {
	return saga.Event{SagaID: sagaID, Run: "r1", Seq: seq, Type: saga.EventSagaCompleted}
}

func TestPruneRemovesNodesLongAfterTheirLeaseExpired(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a, b := c.open("a"), c.open("b")
	for _, s := range []*pgstore.Store{a, b} {
		_, err := s.Census(t.Context(), "order")
		require.NoError(t, err)
	}
	// a stops renewing, as a process that crashed or hangs; its lease
	// ends leaseTTL from now.
	a.Pause()

	// A lease that has expired, even for a whole LeaseTTL, is kept: its
	// node may only be late.
	c.advance(2*leaseTTL, b)
	nodes, runners := c.rowsOf("a")
	assert.Equal(t, 1, nodes, "a's lease, a lease past its expiry")
	assert.Equal(t, 1, runners, "a's runner, a lease past its expiry")
	census, err := b.Census(t.Context(), "order")
	require.NoError(t, err)
	assert.Equal(t, 1, census.Processes, "a no longer counts")

	// Past that grace, the next pass of any live node removes them.
	c.advance(time.Millisecond, b)
	nodes, runners = c.rowsOf("a")
	assert.Zero(t, nodes, "a's lease, LeaseTTL after it expired")
	assert.Zero(t, runners, "a's runner, LeaseTTL after it expired")
	nodes, runners = c.rowsOf("b")
	assert.Equal(t, 1, nodes, "b's lease")
	assert.Equal(t, 1, runners, "b's runner")

	// a wakes up: its renewal registers it again and its census counts
	// it again.
	require.NoError(t, a.Renew())
	require.NoError(t, a.Ping(t.Context()))
	_, err = a.Census(t.Context(), "order")
	require.NoError(t, err)
	census, err = b.Census(t.Context(), "order")
	require.NoError(t, err)
	assert.Equal(t, 2, census.Processes, "a counts again")
}

func TestPruneIsBoundedPerPass(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	s := c.open("live")
	s.Pause() // its passes are the ones below
	_, err := s.Census(t.Context(), "order")
	require.NoError(t, err)
	require.NoError(t, s.Create(t.Context(), []saga.Event{startedEvent("done")}))

	// Leftovers of many crashed processes, and many signals for an
	// instance that ended before they were delivered.
	const extra = 7
	leftovers := pgstore.PruneBatch + extra
	_, err = c.db.ExecContext(t.Context(), `INSERT INTO "`+c.schema+`".nodes (node, expires_at)
		SELECT 'dead-' || g, $1::timestamptz FROM generate_series(1, $2) AS g`,
		c.clock.Now().Add(-time.Hour), leftovers)
	require.NoError(t, err)
	_, err = c.db.ExecContext(t.Context(), `INSERT INTO "`+c.schema+`".runners (node, definition)
		SELECT 'dead-' || g, 'order' FROM generate_series(1, $1) AS g`, leftovers)
	require.NoError(t, err)
	_, err = c.db.ExecContext(t.Context(), `INSERT INTO "`+c.schema+`".signals (saga_id, name, dedup_key)
		SELECT 'done', 'paid', 'webhook-' || g FROM generate_series(1, $1) AS g`, leftovers)
	require.NoError(t, err)
	require.NoError(t, s.Append(t.Context(), "done", 1, []saga.Event{completedEvent("done", 2)}))

	require.NoError(t, s.Renew())
	assert.Equal(t, extra, c.count("nodes", "node LIKE 'dead-%'"), "nodes left after one pass")
	assert.Equal(t, extra, c.count("runners", "node LIKE 'dead-%'"), "runners left after one pass")
	assert.Equal(t, extra, c.signalsOf("done"), "signals left after one pass")

	require.NoError(t, s.Renew())
	assert.Zero(t, c.count("nodes", "node LIKE 'dead-%'"), "nodes left after two passes")
	assert.Zero(t, c.count("runners", "node LIKE 'dead-%'"), "runners left after two passes")
	assert.Zero(t, c.signalsOf("done"), "signals left after two passes")
	nodes, runners := c.rowsOf("live")
	assert.Equal(t, 1, nodes, "the live node's lease")
	assert.Equal(t, 1, runners, "the live node's runner")
}

func TestPruneRemovesSignalsOfFinishedInstancesOnly(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a, b := c.open("a"), c.open("b")
	ctx := t.Context()
	for _, id := range []string{"done", "running"} {
		require.NoError(t, a.Create(ctx, []saga.Event{startedEvent(id)}))
		require.NoError(t, b.Forward(ctx, saga.ForwardedSignal{
			SagaID: id, Name: "paid", Payload: []byte(`42`), DedupKey: "webhook-" + id,
		}))
	}
	// "done" ends before a reads its inbox, then a crashes.
	require.NoError(t, a.Append(ctx, "done", 1, []saga.Event{completedEvent("done", 2)}))
	a.Abandon()

	// Nobody else can ever take the signal of "done": a finished instance
	// is not claimed, and an inbox holds only its node's instances.
	inbox, err := b.Inbox(ctx, "order", 10)
	require.NoError(t, err)
	require.Empty(t, inbox, "b owns nothing yet")

	// Long after a's lease and its grace, b's passes have removed it, and
	// the signal of "done", but not that of "running", which a may no
	// longer take and b has not claimed yet.
	c.advance(3*leaseTTL, b)
	nodes, _ := c.rowsOf("a")
	assert.Zero(t, nodes, "a's lease is pruned")
	assert.Zero(t, c.signalsOf("done"), "signals of a finished instance")
	assert.Equal(t, 1, c.signalsOf("running"), "signals of an unfinished instance whose owner died")

	// b claims "running", finds its signal, and records it.
	claimed, err := b.Claim(ctx, "order", 10)
	require.NoError(t, err)
	require.Equal(t, []string{"running"}, claimed)
	require.NoError(t, b.Renew())
	inbox, err = b.Inbox(ctx, "order", 10)
	require.NoError(t, err)
	require.Len(t, inbox, 1)
	assert.Equal(t, "running", inbox[0].SagaID)
	assert.Equal(t, "paid", inbox[0].Name)
	assert.JSONEq(t, `42`, string(inbox[0].Payload))
	assert.Equal(t, "webhook-running", inbox[0].DedupKey)
	require.NoError(t, b.Delivered(ctx, []int64{inbox[0].ID}))
	assert.Zero(t, c.signalsOf("running"), "delivered")
}

func TestSignalForACrashedOwnerReachesTheNextOwner(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	def, err := saga.NewDefinition("order", []saga.Step[order]{
		{Name: "charge", Signal: "paid", Action: func(ctx context.Context, o *order) error {
			p, ok := saga.SignalPayload(ctx)
			if !ok {
				return saga.Permanent(errors.New("no payment"))
			}
			return json.Unmarshal(p, &o.N)
		}},
	})
	require.NoError(t, err)
	start := func(store *pgstore.Store) *saga.Coordinator[order] {
		coord, err := saga.New(def, saga.Config{
			Store: store, Clock: c.clock, Logger: slog.New(slog.DiscardHandler), ClaimInterval: claimInterval,
		})
		require.NoError(t, err)
		require.NoError(t, coord.Startup(t.Context()))
		return coord
	}
	ctx := t.Context()

	// An instance of a's ended while a signal forwarded to it was queued.
	as := c.open("a")
	require.NoError(t, as.Create(ctx, []saga.Event{startedEvent("done")}))
	require.NoError(t, as.Forward(ctx, saga.ForwardedSignal{SagaID: "done", Name: "paid", DedupKey: "late"}))
	require.NoError(t, as.Append(ctx, "done", 1, []saga.Event{completedEvent("done", 2)}))

	a := start(as)
	bs := c.open("b")
	b := start(bs)
	t.Cleanup(func() { assert.NoError(t, b.Shutdown(context.Background())) })
	sub := b.Subscribe(saga.SubscribeOptions{SagaID: "order-1", Buffer: 64})
	defer sub.Close()
	_, err = a.Start(ctx, order{}, saga.WithID("order-1"))
	require.NoError(t, err)
	require.NoError(t, b.Signal(ctx, "order-1", "paid", []byte(`42`), "webhook-7"))
	require.Equal(t, 1, c.signalsOf("order-1"), "queued for a")

	// a crashes before it reads its inbox; b takes the order over.
	as.Abandon()
	dead, cancel := context.WithCancel(context.Background())
	cancel()
	_ = a.Shutdown(dead)
	c.advance(2*leaseTTL+claimInterval, bs)
	timeout := time.After(sagatest.WaitTimeout) // a safety net, not a wait
	for ended := false; !ended; {
		select {
		case e := <-sub.Events():
			ended = e.Ends()
		case <-timeout:
			t.Fatal("order-1 did not end")
		}
	}
	snap, err := b.Get(ctx, "order-1")
	require.NoError(t, err)
	assert.Equal(t, saga.StatusCompleted, snap.Status)
	assert.Equal(t, 42, snap.State.N, "the payload of the signal sent while a owned it")

	require.NoError(t, bs.Renew())
	assert.Zero(t, c.signalsOf("order-1"), "signals of the order b took over")
	assert.Zero(t, c.signalsOf("done"), "signals of the instance that ended while a owned it")
	nodes, runners := c.rowsOf("a")
	assert.Zero(t, nodes, "a's lease")
	assert.Zero(t, runners, "a's runner")
}
