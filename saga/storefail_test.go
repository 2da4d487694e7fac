package saga_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/sagatest"
)

// flakyStore is a memory store whose next appends fail with err.
type flakyStore struct {
	*saga.MemoryStore
	failures atomic.Int32
	err      error
	pingErr  error
}

func (s *flakyStore) Append(ctx context.Context, id string, expected uint64, events []saga.Event) error {
	if s.failures.Add(-1) >= 0 {
		return s.err
	}
	return s.MemoryStore.Append(ctx, id, expected, events)
}

func (s *flakyStore) Ping(ctx context.Context) error {
	if s.pingErr != nil {
		return s.pingErr
	}
	return s.MemoryStore.Ping(ctx)
}

func newFlakyStore(failures int32, err error) *flakyStore {
	s := &flakyStore{MemoryStore: saga.NewMemoryStore(saga.MemoryConfig{}), err: err}
	s.failures.Store(failures)
	return s
}

var errDisk = errors.New("disk unplugged")

func TestFailedWriteIsRetriedFromTheLastRecordedEvent(t *testing.T) {
	t.Parallel()
	store := newFlakyStore(1, errDisk)
	s := newScript(t)
	h := sagatest.New(t, fourSteps(s), saga.Config{Store: store})
	id := h.Start(order{})

	// validate succeeds but its success cannot be written: the instance
	// waits, then runs validate again with the same key.
	h.AdvanceWhenArmed(1, time.Second)
	snap := h.WaitStatus(id, saga.StatusCompleted, saga.StatusCompensated)
	assert.Equal(t, saga.StatusCompleted, snap.Status)
	calls := s.callsOf("validate")
	require.Len(t, calls, 2)
	assert.Equal(t, calls[0].info, calls[1].info)
	assert.Len(t, s.callsOf("payment"), 1)
	requireConsistent(t, id, logOf(t, h, id))
}

// An instance whose log this coordinator may no longer write is let go:
// another process owns it, or has ended it, or it is gone.
func TestInstanceNotOursIsLetGo(t *testing.T) {
	t.Parallel()
	for _, refusal := range []error{saga.ErrFenced, saga.ErrFinished, saga.ErrNotFound} {
		t.Run(refusal.Error(), func(t *testing.T) {
			t.Parallel()
			store := newFlakyStore(1, fmt.Errorf("append refused: %w", refusal))
			s := newScript(t)
			h := sagatest.New(t, fourSteps(s), saga.Config{Store: store, MaxInFlight: 1})
			id := h.Start(order{})
			// Once let go, its slot is free again.
			startNext := func() error {
				_, err := h.Coordinator.Start(context.Background(), order{}, saga.WithID("next"))
				return err
			}
			for errors.Is(startNext(), saga.ErrOverloaded) {
			}
			h.WaitStatus("next", saga.StatusCompleted)
			assert.Zero(t, h.Health(context.Background()).InFlight)
			assert.ErrorIs(t, h.Signal(context.Background(), id, "x", nil, ""), saga.ErrFenced, "it runs nowhere here")
			assert.Len(t, s.callsOf("payment"), 1, "only the next instance got past validate")
		})
	}
}

func TestStartupFailsWhenTheStoreIsDown(t *testing.T) {
	t.Parallel()
	store := newFlakyStore(0, nil)
	store.pingErr = errDisk
	c, err := saga.New(fourSteps(newScript(t)), saga.Config{Store: store})
	require.NoError(t, err)
	assert.ErrorIs(t, c.Startup(context.Background()), errDisk)
	assert.Equal(t, saga.HealthStarting, c.Health(context.Background()).State)
	_, err = c.Start(context.Background(), order{})
	assert.ErrorIs(t, err, saga.ErrNotStarted)
	require.NoError(t, c.Shutdown(context.Background()))
}

func TestUnfinishedErrorNamesTheFirstTen(t *testing.T) {
	t.Parallel()
	var ids []string
	for i := range 12 {
		ids = append(ids, fmt.Sprint("o", i))
	}
	msg := (&saga.UnfinishedError{IDs: ids}).Error()
	assert.True(t, strings.HasSuffix(msg, ": 12: o0, o1, o2, o3, o4, o5, o6, o7, o8, o9 and 2 more"), msg)
	assert.Equal(t, "saga: instances unfinished at shutdown: 1: a", (&saga.UnfinishedError{IDs: []string{"a"}}).Error())
}

func TestSubscribeAfterShutdownIsClosed(t *testing.T) {
	t.Parallel()
	h, _ := setup(t, saga.Config{})
	require.NoError(t, h.Shutdown(context.Background()))
	_, open := <-h.Subscribe(saga.SubscribeOptions{}).Events()
	assert.False(t, open)
}

func TestSnapshotReportsTheVersionAnInstanceStartedWith(t *testing.T) {
	t.Parallel()
	store := saga.NewMemoryStore(saga.MemoryConfig{})
	s := newScript(t)
	h := sagatest.New(t, fourSteps(s), saga.Config{Store: store})
	id := h.WaitStatus(h.Start(order{}), saga.StatusCompleted).ID

	v2 := sagatest.New(t, fourSteps(s, saga.WithVersion(2)), saga.Config{Store: store})
	snap, err := v2.Get(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, 1, snap.Version)
}
