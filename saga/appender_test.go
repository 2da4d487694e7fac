package saga_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
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
