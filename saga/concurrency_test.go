package saga_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/sagatest"
)

// TestTenThousandConcurrentInstances runs 10,000 instances at once: every
// 10th fails its payment once and retries, every 7th fails shipping
// permanently and compensates. Each must end as planned with a consistent
// log.
func TestTenThousandConcurrentInstances(t *testing.T) {
	t.Parallel()
	const n = 10_000
	var ended atomic.Int64
	done := make(chan struct{})
	cfg := saga.Config{Hooks: saga.Hooks{OnEvent: func(e saga.Event) {
		if e.Ends() && ended.Add(1) == n {
			close(done)
		}
	}}}
	act := func(name string) saga.Action[order] {
		return func(ctx context.Context, st *order) error {
			info, _ := saga.Info(ctx)
			switch {
			case name == "payment" && st.Amount%10 == 0 && info.Attempt == 1:
				return errFlaky
			case name == "shipping" && st.Amount%7 == 0:
				return saga.Permanent(errNoStock)
			}
			st.Trail = append(st.Trail, name)
			return nil
		}
	}
	var steps []saga.Step[order]
	for _, name := range []string{"validate", "payment", "inventory", "shipping"} {
		steps = append(steps, saga.Step[order]{
			Name: name, Action: act(name), Compensate: act("undo " + name),
			Retry: saga.RetryPolicy{InitialBackoff: time.Millisecond, Jitter: -1}, Timeout: time.Hour,
		})
	}
	def, err := saga.NewDefinition("load", steps)
	require.NoError(t, err)
	h := sagatest.New(t, def, cfg)

	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				_, err := h.Coordinator.Start(context.Background(), order{Amount: i}, saga.WithID(strconv.Itoa(i)))
				if err != nil {
					t.Errorf("start %d: %v", i, err)
				}
			}
		})
	}

	// Fire backoffs as they are armed until every instance has ended.
	ctx, cancel := context.WithTimeout(context.Background(), 2*sagatest.WaitTimeout)
	defer cancel()
	advancing, stopAdvancing := context.WithCancel(ctx)
	go func() {
		select {
		case <-done:
		case <-ctx.Done():
		}
		stopAdvancing()
	}()
	for h.Clock.BlockUntil(advancing, 1) == nil {
		h.Clock.Advance(time.Millisecond)
	}
	wg.Wait()
	require.NoError(t, ctx.Err(), "only %d of %d instances ended", ended.Load(), n)

	for i := range n {
		id := strconv.Itoa(i)
		events, err := h.Events(context.Background(), id)
		require.NoError(t, err)
		requireConsistent(t, id, events)
		snap, err := h.Get(context.Background(), id)
		require.NoError(t, err)
		want, trail := saga.StatusCompleted, []string{"validate", "payment", "inventory", "shipping"}
		if i%7 == 0 {
			want, trail = saga.StatusCompensated, []string{"validate", "payment", "inventory", "undo inventory", "undo payment", "undo validate"}
		}
		if !assert.Equal(t, want, snap.Status, "instance %d", i) || !assert.Equal(t, trail, snap.State.Trail, "instance %d", i) {
			t.FailNow()
		}
	}
	health := h.Health(context.Background())
	assert.Equal(t, 0, health.InFlight)
	assert.Equal(t, n-(n+6)/7, health.Completed, fmt.Sprintf("%+v", health))
	assert.Equal(t, (n+6)/7, health.Compensated)
}
