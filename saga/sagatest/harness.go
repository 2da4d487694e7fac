// Package sagatest helps test sagas and stores: a harness that runs a
// coordinator on a fake clock, waits that block on the coordinator's events
// instead of sleeping, and the conformance suite every saga.Store must pass.
package sagatest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/saga"
)

// WaitTimeout bounds every wait of this package in real time, so that a
// broken test fails instead of hanging. The fake clock is not involved.
var WaitTimeout = 30 * time.Second

// Harness is a started coordinator on a fake clock, shut down when the test
// ends.
type Harness[S any] struct {
	*saga.Coordinator[S]
	// Clock is the coordinator's clock; advance it to fire backoffs,
	// timeouts and deadlines.
	Clock *clock.Fake
	// Store is the coordinator's store.
	Store saga.Store
	tb    testing.TB
}

// New starts a coordinator for def with cfg, filling in what the test left
// out: a fake clock starting at clock.NewFake's default time, a memory store,
// a logger that discards, and a random source that returns 0.5 so that
// jittered backoffs are exactly their nominal value. It fails the test if
// the coordinator cannot start, and shuts it down in t.Cleanup.
func New[S any](tb testing.TB, def *saga.Definition[S], cfg saga.Config) *Harness[S] {
	tb.Helper()
	fake, ok := cfg.Clock.(*clock.Fake)
	if !ok {
		if cfg.Clock != nil {
			tb.Fatalf("sagatest: Config.Clock must be a *clock.Fake or nil, got %T", cfg.Clock)
		}
		fake = clock.NewFake(time.Time{})
		cfg.Clock = fake
	}
	if cfg.Store == nil {
		cfg.Store = saga.NewMemoryStore(saga.MemoryConfig{Clock: fake})
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Rand == nil {
		cfg.Rand = func() float64 { return 0.5 }
	}
	c, err := saga.New(def, cfg)
	if err != nil {
		tb.Fatalf("sagatest: new coordinator: %v", err)
	}
	ctx, cancel := waitContext(context.Background())
	defer cancel()
	if err := c.Startup(ctx); err != nil {
		tb.Fatalf("sagatest: startup: %v", err)
	}
	h := &Harness[S]{Coordinator: c, Clock: fake, Store: cfg.Store, tb: tb}
	tb.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // abandon whatever is still running: the test is over
		_ = c.Shutdown(ctx)
	})
	return h
}

// Start starts an instance and fails the test if it cannot.
func (h *Harness[S]) Start(state S, opts ...saga.StartOption) string {
	h.tb.Helper()
	id, err := h.Coordinator.Start(context.Background(), state, opts...)
	if err != nil {
		h.tb.Fatalf("sagatest: start: %v", err)
	}
	return id
}

// WaitStatus waits until the instance has one of the statuses and returns
// its snapshot. It fails the test after WaitTimeout.
func (h *Harness[S]) WaitStatus(id string, want ...saga.Status) saga.Snapshot[S] {
	h.tb.Helper()
	return WaitStatus(h.tb, h.Coordinator, id, want...)
}

// WaitEvent waits until the instance's log holds an event of type t after
// sequence number after, and returns the first such event.
func (h *Harness[S]) WaitEvent(id string, t saga.EventType, after uint64) saga.Event {
	h.tb.Helper()
	return WaitEvent(h.tb, h.Coordinator, id, t, after)
}

// AdvanceWhenArmed waits until at least n timers are armed on the fake
// clock, then advances it by d. Use it to fire a backoff or a timeout that
// the engine is about to arm.
func (h *Harness[S]) AdvanceWhenArmed(n int, d time.Duration) {
	h.tb.Helper()
	ctx, cancel := waitContext(context.Background())
	defer cancel()
	if err := h.Clock.BlockUntil(ctx, n); err != nil {
		h.tb.Fatalf("sagatest: waiting for %d timers (have %d): %v", n, h.Clock.Timers(), err)
	}
	h.Clock.Advance(d)
}

// Observer is what the wait functions need of a coordinator; every
// *saga.Coordinator is one.
type Observer[S any] interface {
	Get(ctx context.Context, id string) (saga.Snapshot[S], error)
	Events(ctx context.Context, id string) ([]saga.Event, error)
	Subscribe(opts saga.SubscribeOptions) *saga.Subscription
}

// WaitStatus waits until instance id has one of the wanted statuses and
// returns its snapshot, failing the test after WaitTimeout. It blocks on
// the coordinator's events; it never sleeps.
func WaitStatus[S any](tb testing.TB, c Observer[S], id string, want ...saga.Status) saga.Snapshot[S] {
	tb.Helper()
	var snap saga.Snapshot[S]
	err := waitFor(c, id, func(ctx context.Context) (bool, error) {
		var err error
		snap, err = c.Get(ctx, id)
		if errors.Is(err, saga.ErrNotFound) {
			return false, nil
		}
		return err == nil && slices.Contains(want, snap.Status), err
	})
	if err != nil {
		tb.Fatalf("sagatest: waiting for %s to be %v (it is %v): %v", id, want, snap.Status, err)
	}
	return snap
}

// WaitEvent waits until instance id's log holds an event of type t with a
// sequence number above after, and returns the first such event. It fails
// the test after WaitTimeout.
func WaitEvent[S any](tb testing.TB, c Observer[S], id string, t saga.EventType, after uint64) saga.Event {
	tb.Helper()
	var found saga.Event
	err := waitFor(c, id, func(ctx context.Context) (bool, error) {
		events, err := c.Events(ctx, id)
		if errors.Is(err, saga.ErrNotFound) {
			return false, nil
		}
		for _, e := range events {
			if e.Seq > after && e.Type == t {
				found = e
				return true, nil
			}
		}
		return false, err
	})
	if err != nil {
		tb.Fatalf("sagatest: waiting for %v in %s: %v", t, id, err)
	}
	return found
}

// waitFor checks cond now and again after every event of instance id, until
// it holds, fails, or WaitTimeout passes.
func waitFor[S any](c Observer[S], id string, cond func(context.Context) (bool, error)) error {
	ctx, cancel := waitContext(context.Background())
	defer cancel()
	sub := c.Subscribe(saga.SubscribeOptions{SagaID: id, Buffer: 1024})
	defer sub.Close()
	for {
		ok, err := cond(ctx)
		if err != nil || ok {
			return err
		}
		select {
		case _, open := <-sub.Events():
			if !open {
				// The coordinator shut down: one last look.
				if ok, err := cond(ctx); ok || err != nil {
					return err
				}
				return fmt.Errorf("%w: coordinator shut down", saga.ErrStopped)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func waitContext(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, WaitTimeout)
}
