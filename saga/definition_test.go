package saga_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga"
)

func noop(context.Context, *order) error { return nil }

func TestNewDefinitionRejectsInvalidSagas(t *testing.T) {
	t.Parallel()
	ok := saga.Step[order]{Name: "a", Action: noop}
	tests := []struct {
		name  string
		def   string
		steps []saga.Step[order]
		opts  []saga.DefinitionOption
		step  int
	}{
		{"empty name", "", []saga.Step[order]{ok}, nil, -1},
		{"no steps", "d", nil, nil, -1},
		{"empty step name", "d", []saga.Step[order]{ok, {Action: noop}}, nil, 1},
		{"duplicate step name", "d", []saga.Step[order]{ok, ok}, nil, 1},
		{"nil action", "d", []saga.Step[order]{{Name: "a"}}, nil, 0},
		{"negative timeout", "d", []saga.Step[order]{{Name: "a", Action: noop, Timeout: -1}}, nil, 0},
		{"negative attempts", "d", []saga.Step[order]{{Name: "a", Action: noop, Retry: saga.RetryPolicy{MaxAttempts: -1}}}, nil, 0},
		{"negative backoff", "d", []saga.Step[order]{{Name: "a", Action: noop, Retry: saga.RetryPolicy{InitialBackoff: -1}}}, nil, 0},
		{"shrinking multiplier", "d", []saga.Step[order]{{Name: "a", Action: noop, Retry: saga.RetryPolicy{Multiplier: 0.5}}}, nil, 0},
		{"NaN multiplier", "d", []saga.Step[order]{{Name: "a", Action: noop, Retry: saga.RetryPolicy{Multiplier: math.NaN()}}}, nil, 0},
		{"jitter above one", "d", []saga.Step[order]{{Name: "a", Action: noop, Retry: saga.RetryPolicy{Jitter: 1.5}}}, nil, 0},
		{"bad compensation retry", "d", []saga.Step[order]{{Name: "a", Action: noop, CompensationRetry: saga.RetryPolicy{MaxAttempts: -2}}}, nil, 0},
		{"signal timeout without signal", "d", []saga.Step[order]{{Name: "a", Action: noop, SignalTimeout: time.Second}}, nil, 0},
		{"negative signal timeout", "d", []saga.Step[order]{{Name: "a", Action: noop, Signal: "s", SignalTimeout: -1}}, nil, 0},
		{"negative saga timeout", "d", []saga.Step[order]{ok}, []saga.DefinitionOption{saga.WithTimeout(-time.Second)}, -1},
		{"negative version", "d", []saga.Step[order]{ok}, []saga.DefinitionOption{saga.WithVersion(-1)}, -1},
		{"bad default retry", "d", []saga.Step[order]{ok}, []saga.DefinitionOption{saga.WithRetry(saga.RetryPolicy{MaxAttempts: -1})}, -1},
		{"bad default compensation retry", "d", []saga.Step[order]{ok}, []saga.DefinitionOption{saga.WithCompensationRetry(saga.RetryPolicy{Jitter: 2})}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			def, err := saga.NewDefinition(tt.def, tt.steps, tt.opts...)
			assert.Nil(t, def)
			require.ErrorIs(t, err, saga.ErrInvalidDefinition)
			var de *saga.DefinitionError
			require.True(t, errors.As(err, &de))
			assert.Equal(t, tt.step, de.Step)
			assert.NotEmpty(t, de.Reason)
		})
	}
}

func TestNewDefinitionFillsDefaults(t *testing.T) {
	t.Parallel()
	def, err := saga.NewDefinition("d", []saga.Step[order]{
		{Name: "a", Action: noop},
		{Name: "b", Action: noop, Retry: saga.RetryPolicy{MaxAttempts: 7}, Timeout: time.Second},
	}, saga.WithVersion(3), saga.WithTimeout(time.Minute), saga.WithRetry(saga.RetryPolicy{MaxAttempts: 5}))
	require.NoError(t, err)
	assert.Equal(t, "d", def.Name())
	assert.Equal(t, 3, def.Version())
	assert.Equal(t, time.Minute, def.Timeout())
	assert.Equal(t, []string{"a", "b"}, def.Steps())

	a, ok := def.Step("a")
	require.True(t, ok)
	assert.Equal(t, saga.RetryPolicy{MaxAttempts: 5, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second, Multiplier: 2, Jitter: 0.2}, a.Retry)
	assert.Equal(t, saga.RetryPolicy{MaxAttempts: 10, InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Minute, Multiplier: 2, Jitter: 0.2}, a.CompensationRetry)
	assert.Equal(t, 30*time.Second, a.Timeout)
	b, _ := def.Step("b")
	assert.Equal(t, 7, b.Retry.MaxAttempts)
	assert.Equal(t, time.Second, b.Timeout)
	_, ok = def.Step("nope")
	assert.False(t, ok)
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	def, err := saga.NewDefinition("d", []saga.Step[order]{{Name: "a", Action: noop}})
	require.NoError(t, err)
	for _, cfg := range []saga.Config{
		{Workers: -1}, {MaxInFlight: -1}, {ClaimInterval: -1}, {Breaker: saga.BreakerPolicy{Failures: -1}},
	} {
		_, err := saga.New(def, cfg)
		assert.ErrorIs(t, err, saga.ErrInvalidArgument, "%+v", cfg)
	}
	_, err = saga.New[order](nil, saga.Config{})
	assert.ErrorIs(t, err, saga.ErrInvalidArgument)
}

func TestStatusTransitions(t *testing.T) {
	t.Parallel()
	all := []saga.Status{saga.StatusPending, saga.StatusRunning, saga.StatusCompleted, saga.StatusCompensating, saga.StatusCompensated, saga.StatusStuck}
	allowed := map[[2]saga.Status]bool{
		{saga.StatusPending, saga.StatusRunning}:          true,
		{saga.StatusRunning, saga.StatusCompleted}:        true,
		{saga.StatusRunning, saga.StatusCompensating}:     true,
		{saga.StatusCompensating, saga.StatusCompensated}: true,
		{saga.StatusCompensating, saga.StatusStuck}:       true,
		{saga.StatusStuck, saga.StatusCompensating}:       true,
	}
	for _, from := range all {
		for _, to := range all {
			assert.Equal(t, allowed[[2]saga.Status{from, to}], from.CanTransition(to), "%v → %v", from, to)
		}
	}
	assert.Equal(t, "compensating", saga.StatusCompensating.String())
	assert.Equal(t, "Status(0)", saga.Status(0).String())
	assert.True(t, saga.StatusCompensated.Terminal())
	assert.False(t, saga.StatusStuck.Terminal())
	assert.True(t, saga.StatusStuck.Settled())
}

func TestEventTypeText(t *testing.T) {
	t.Parallel()
	for typ := saga.EventSagaStarted; typ <= saga.EventSignalReceived; typ++ {
		b, err := typ.MarshalText()
		require.NoError(t, err)
		var back saga.EventType
		require.NoError(t, back.UnmarshalText(b))
		assert.Equal(t, typ, back)
	}
	var back saga.EventType
	assert.ErrorIs(t, back.UnmarshalText([]byte("nope")), saga.ErrInvalidEvent)
	_, err := saga.EventType(0).MarshalText()
	assert.ErrorIs(t, err, saga.ErrInvalidEvent)
}

func TestMermaid(t *testing.T) {
	t.Parallel()
	def := fourSteps(newScript(t))
	assert.Equal(t, `flowchart LR
    start([start])
    s0["validate"]
    s1["payment"]
    s2["inventory"]
    s3["shipping"]
    completed([completed])
    c1["undo payment"]
    c2["undo inventory"]
    c3["undo shipping"]
    compensated([compensated])
    start --> s0
    s0 --> s1
    s1 --> s2
    s2 --> s3
    s3 --> completed
    s0 -. fails .-> compensated
    s1 -. fails .-> c1
    s1 -. refused .-> compensated
    s2 -. fails .-> c2
    s2 -. refused .-> c1
    s3 -. fails .-> c3
    s3 -. refused .-> c2
    c1 -.-> compensated
    c2 -.-> c1
    c3 -.-> c2
`, def.Mermaid())
}
