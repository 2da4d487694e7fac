package saga_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga"
)

func TestSubscriptionDeliversEachInstanceInOrder(t *testing.T) {
	t.Parallel()
	h, _ := setup(t, saga.Config{})
	all := h.Subscribe(saga.SubscribeOptions{Buffer: 1000})
	defer all.Close()
	id := h.Start(order{})
	one := h.Subscribe(saga.SubscribeOptions{SagaID: id, Buffer: 100})
	defer one.Close()
	other := h.Start(order{})
	h.WaitStatus(id, saga.StatusCompleted)
	h.WaitStatus(other, saga.StatusCompleted)

	got := map[string][]uint64{}
	for len(got[id]) < 10 || len(got[other]) < 10 {
		e := receive(t, all.Events())
		got[e.SagaID] = append(got[e.SagaID], e.Seq)
	}
	assert.Equal(t, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, got[id])
	assert.Equal(t, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, got[other])
	assert.Zero(t, all.Missed())

	for e := receive(t, one.Events()); ; e = receive(t, one.Events()) {
		require.Equal(t, id, e.SagaID, "a filtered subscription sees only its instance")
		if e.Type == saga.EventSagaCompleted {
			break
		}
	}
}

func TestSlowSubscriberNeverBlocksTheEngine(t *testing.T) {
	t.Parallel()
	h, _ := setup(t, saga.Config{})
	slow := h.Subscribe(saga.SubscribeOptions{Buffer: 1})
	defer slow.Close()
	for range 20 {
		h.WaitStatus(h.Start(order{}), saga.StatusCompleted)
	}
	assert.Equal(t, uint64(199), slow.Missed(), "200 events, room for 1")
	e := receive(t, slow.Events())
	assert.Equal(t, saga.EventSagaStarted, e.Type, "the first event is kept, the rest dropped")

	slow.Close()
	slow.Close() // twice is fine
	_, open := <-slow.Events()
	assert.False(t, open)
}

func TestHooksSeeEveryEventAndAttempt(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var events []saga.EventType
	var attempts []string
	ended := make(chan struct{})
	cfg := saga.Config{Hooks: saga.Hooks{
		OnEvent: func(e saga.Event) {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, e.Type)
			if e.Type == saga.EventSagaCompensated {
				close(ended)
			}
		},
		OnAttempt: func(info saga.StepInfo, elapsed time.Duration, err error) {
			mu.Lock()
			defer mu.Unlock()
			attempts = append(attempts, info.Step)
			assert.GreaterOrEqual(t, elapsed, time.Duration(0))
		},
	}}
	h, s := setup(t, cfg)
	s.failWith("inventory", saga.Permanent(errNoStock))
	h.Start(order{})
	// The hook sees an event once it is stored, which may be after a
	// reader of the store has seen it: wait for the hook, not the store.
	receive(t, ended)
	mu.Lock()
	defer mu.Unlock()
	assert.Len(t, events, 11)
	assert.Equal(t, saga.EventSagaCompensated, events[len(events)-1])
	assert.Equal(t, []string{"validate", "payment", "inventory", "payment"}, attempts)
}

func TestEveryLogLineCarriesTheSagaID(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, s := setup(t, saga.Config{Logger: logger})
	s.failWith("payment", errFlaky)
	s.failWith("shipping", saga.Permanent(errNoStock))
	id := h.Start(order{})
	h.WaitEvent(id, saga.EventRetryScheduled, 0)
	h.AdvanceWhenArmed(1, 100*time.Millisecond)
	h.WaitStatus(id, saga.StatusCompensated)

	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	require.Greater(t, len(lines), 10)
	levels := map[string]int{}
	for _, line := range lines {
		var rec map[string]any
		require.NoError(t, json.Unmarshal(line, &rec), "%s", line)
		assert.Equal(t, id, rec["saga_id"], "%s", line)
		levels[rec["level"].(string)]++
	}
	assert.Equal(t, 3, levels["WARN"], "two failed attempts, one failed step")
	assert.Equal(t, 1, levels["INFO"], "compensated")
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

func TestHealthReportsInFlightAndOldest(t *testing.T) {
	t.Parallel()
	h, s := setup(t, saga.Config{MaxInFlight: 100})
	assert.Equal(t, saga.HealthHealthy, h.Health(context.Background()).State)
	s.blockOn("payment")
	id := h.Start(order{})
	h.WaitEvent(id, saga.EventStepStarted, 3)
	h.Clock.Advance(500 * time.Millisecond)
	health := h.Health(context.Background())
	assert.Equal(t, 1, health.InFlight)
	assert.Equal(t, 1, health.Running)
	assert.Equal(t, 100, health.Capacity)
	assert.Equal(t, 500*time.Millisecond, health.OldestRunning)
	assert.Empty(t, health.StoreError)

	b, err := json.Marshal(health)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"state":"healthy"`)
}
