package saga_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga"
)

// tally encodes itself by appending; its padding makes the encodings of a
// step grow, so that they outgrow the room the first one sized.
type tally struct {
	N   int    `json:"n"`
	Pad string `json:"pad"`
	Bad string `json:"-"` // "invalid": append invalid JSON; "error": fail
}

func (t tally) AppendJSON(b []byte) ([]byte, error) {
	switch t.Bad {
	case "invalid":
		return append(b, `{"n":`...), nil
	case "error":
		return nil, errors.New("cannot encode")
	}
	b = append(b, `{"n":`...)
	b = strconv.AppendInt(b, int64(t.N), 10)
	b = append(b, `,"pad":`...)
	b = strconv.AppendQuote(b, t.Pad)
	return append(b, '}'), nil
}

var _ saga.JSONAppender = tally{}

func tallySteps(t *testing.T, n int, grow func(*tally) error) *saga.Definition[tally] {
	t.Helper()
	var steps []saga.Step[tally]
	for i := range n {
		steps = append(steps, saga.Step[tally]{
			Name:       "step" + strconv.Itoa(i),
			Action:     func(_ context.Context, s *tally) error { return grow(s) },
			Compensate: func(_ context.Context, s *tally) error { s.N--; return nil },
			Retry:      saga.RetryPolicy{MaxAttempts: 1},
		})
	}
	def, err := saga.NewDefinition("tally", steps)
	require.NoError(t, err)
	return def
}

func TestAppendedStatesAreKeptApart(t *testing.T) {
	t.Parallel()
	def := tallySteps(t, 6, func(s *tally) error {
		s.N++
		s.Pad += strings.Repeat("x", 10*s.N) // outgrows the first buffer
		return nil
	})
	h := newHarness(t, def, saga.Config{})
	id := h.Start(tally{Pad: "start"})
	h.WaitStatus(id, saga.StatusCompleted)

	events, err := h.Events(context.Background(), id)
	require.NoError(t, err)
	var states []tally
	for _, e := range events {
		if e.State == nil {
			continue
		}
		assert.Equal(t, len(e.State), cap(e.State), "seq %d: room to append over what follows", e.Seq)
		var s tally
		require.NoError(t, json.Unmarshal(e.State, &s), "seq %d: %s", e.Seq, e.State)
		states = append(states, s)
	}
	require.Len(t, states, 7)
	pad := "start"
	for i, s := range states {
		assert.Equal(t, i, s.N)
		assert.Equal(t, pad, s.Pad)
		pad += strings.Repeat("x", 10*(i+1))
	}
}

// keepingStore is a memory store that also keeps the events it is given,
// their byte slices as they are, as a store may.
type keepingStore struct {
	*saga.MemoryStore
	mu   sync.Mutex
	kept []saga.Event
}

func (s *keepingStore) Create(ctx context.Context, events []saga.Event) error {
	s.keep(events)
	return s.MemoryStore.Create(ctx, events)
}

func (s *keepingStore) Append(ctx context.Context, id string, expected uint64, events []saga.Event) error {
	s.keep(events)
	return s.MemoryStore.Append(ctx, id, expected, events)
}

func (s *keepingStore) keep(events []saga.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kept = append(s.kept, events...)
}

// The states that the engine hands to hooks and subscribers, and to a
// store that keeps them, are each step's own, after later steps have
// encoded theirs: whether the store copies each encoding, as the memory
// store does (and the engine then encodes every state into one buffer), or
// keeps it.
func TestAppendedStatesHandedOnStayAsRecorded(t *testing.T) {
	t.Parallel()
	keeping := &keepingStore{MemoryStore: saga.NewMemoryStore(saga.MemoryConfig{})}
	t.Cleanup(func() { _ = keeping.Close() })
	for name, store := range map[string]saga.Store{"memory": nil, "keeping": keeping} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			def := tallySteps(t, 4, func(s *tally) error {
				s.N++
				s.Pad += strings.Repeat(strconv.Itoa(s.N), 3*s.N) // outgrows the room the first one sized
				return nil
			})
			var mu sync.Mutex
			var hooked []saga.Event
			h := newHarness(t, def, saga.Config{Store: store, Hooks: saga.Hooks{OnEvent: func(e saga.Event) {
				mu.Lock()
				defer mu.Unlock()
				hooked = append(hooked, e)
			}}})
			sub := h.Subscribe(saga.SubscribeOptions{})
			defer sub.Close()
			id := h.Start(tally{Pad: "start"})
			h.WaitStatus(id, saga.StatusCompleted)

			want := []string{`{"n":0,"pad":"start"}`}
			pad := "start"
			for n := 1; n <= 4; n++ {
				pad += strings.Repeat(strconv.Itoa(n), 3*n)
				want = append(want, `{"n":`+strconv.Itoa(n)+`,"pad":"`+pad+`"}`)
			}
			states := func(events []saga.Event) []string {
				var out []string
				for _, e := range events {
					if e.SagaID == id && e.State != nil {
						out = append(out, string(e.State))
					}
				}
				return out
			}
			var subscribed []saga.Event
			for len(subscribed) == 0 || !subscribed[len(subscribed)-1].Ends() {
				subscribed = append(subscribed, receive(t, sub.Events()))
			}
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, want, states(hooked), "hooked")
			assert.Equal(t, want, states(subscribed), "subscribed")
			if store != nil {
				keeping.mu.Lock()
				defer keeping.mu.Unlock()
				assert.Equal(t, want, states(keeping.kept), "kept")
			}
		})
	}
}

func TestAppendedStateMustBeJSON(t *testing.T) {
	t.Parallel()
	h := newHarness(t, tallySteps(t, 1, func(*tally) error { return nil }), saga.Config{})
	ctx := context.Background()
	for _, bad := range []string{"invalid", "error"} {
		_, err := h.Coordinator.Start(ctx, tally{Bad: bad}, saga.WithID(bad))
		assert.ErrorIs(t, err, saga.ErrInvalidArgument, bad)
		_, err = h.Get(ctx, bad)
		assert.ErrorIs(t, err, saga.ErrNotFound, "%s: nothing created", bad)
	}
}

func TestStateThatStopsEncodingCompensates(t *testing.T) {
	t.Parallel()
	def := tallySteps(t, 3, func(s *tally) error {
		if s.N++; s.N == 2 {
			s.Bad = "error"
		}
		return nil
	})
	h := newHarness(t, def, saga.Config{})
	id := h.Start(tally{})
	h.WaitStatus(id, saga.StatusCompensated)
	snap, err := h.Get(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, 0, snap.State.N, "the first step undone, from the last state that encoded")
	assert.Contains(t, snap.LastError, "cannot encode")
}

func TestAppendedStatesOfDifferentSizes(t *testing.T) {
	t.Parallel()
	def := tallySteps(t, 2, func(s *tally) error { s.N++; return nil })
	h := newHarness(t, def, saga.Config{})
	// Each instance sizes its buffers after its own states.
	for _, pad := range []string{"", strings.Repeat("y", 5000), "z", strings.Repeat("w", 100)} {
		id := h.Start(tally{Pad: pad})
		h.WaitStatus(id, saga.StatusCompleted)
		snap, err := h.Get(context.Background(), id)
		require.NoError(t, err)
		assert.Equal(t, tally{N: 2, Pad: pad}, snap.State)
	}
}

// gated encodes itself like tally, but its encoding after the first step
// waits for release, once it has said so on entered.
type gated struct {
	N        int           `json:"n"`
	Entered  chan struct{} `json:"-"`
	Released chan struct{} `json:"-"`
}

func (g gated) AppendJSON(b []byte) ([]byte, error) {
	if g.N == 1 {
		g.Entered <- struct{}{}
		<-g.Released
	}
	b = append(b, `{"n":`...)
	b = strconv.AppendInt(b, int64(g.N), 10)
	return append(b, '}'), nil
}

// A signal recorded while a worker encodes the instance's state, which it
// does without the instance's lock, leaves that encoding alone: with a
// memory store the worker encodes into a buffer it borrows until the
// state is stored, and only it gives the buffer back.
func TestSignalWhileAStateIsEncoded(t *testing.T) {
	t.Parallel()
	var steps []saga.Step[gated]
	for _, name := range []string{"one", "two"} {
		steps = append(steps, saga.Step[gated]{
			Name:   name,
			Action: func(_ context.Context, g *gated) error { g.N++; return nil },
		})
	}
	def, err := saga.NewDefinition("gated", steps)
	require.NoError(t, err)
	h := newHarness(t, def, saga.Config{})
	g := gated{Entered: make(chan struct{}), Released: make(chan struct{})}
	id := h.Start(g)

	receive(t, g.Entered) // the worker encodes the state after step one
	require.NoError(t, h.Coordinator.Signal(context.Background(), id, "poke", []byte(`{"x":1}`), ""))
	close(g.Released)
	h.WaitStatus(id, saga.StatusCompleted)

	events, err := h.Events(context.Background(), id)
	require.NoError(t, err)
	var states []string
	signals := 0
	for _, e := range events {
		if e.State != nil {
			states = append(states, string(e.State))
		}
		if e.Type == saga.EventSignalReceived {
			signals++
			assert.JSONEq(t, `{"x":1}`, string(e.Payload))
		}
	}
	assert.Equal(t, []string{`{"n":0}`, `{"n":1}`, `{"n":2}`}, states)
	assert.Equal(t, 1, signals)
}
