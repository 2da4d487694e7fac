package saga_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/sagatest"
)

// order is the state of the test saga.
type order struct {
	Amount  int      `json:"amount"`
	Charged bool     `json:"charged"`
	Trail   []string `json:"trail"`
}

// script makes the steps of a test saga whose behaviour each test sets:
// fail[name] returns the error of each call in turn (nil once exhausted),
// and every call is recorded with its StepInfo and the clock time.
type script struct {
	t     testing.TB
	clock interface{ Now() time.Time }

	mu    sync.Mutex
	fail  map[string][]error // by "step" or "undo step"
	calls []call
	block map[string]bool // calls that wait for their context to end, then fail permanently
}

type call struct {
	name string // "step" or "undo step"
	info saga.StepInfo
	at   time.Time
}

func newScript(t testing.TB) *script {
	return &script{t: t, fail: map[string][]error{}, block: map[string]bool{}}
}

func (s *script) failWith(name string, errs ...error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[name] = append(s.fail[name], errs...)
}

func (s *script) blockOn(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.block[name] = true
}

func (s *script) run(ctx context.Context, name string, st *order) error {
	info, ok := saga.Info(ctx)
	if !ok {
		return errors.New("no step info")
	}
	s.mu.Lock()
	var at time.Time
	if s.clock != nil {
		at = s.clock.Now()
	}
	s.calls = append(s.calls, call{name: name, info: info, at: at})
	var err error
	if q := s.fail[name]; len(q) > 0 {
		err, s.fail[name] = q[0], q[1:]
	}
	block := s.block[name]
	s.mu.Unlock()
	if block {
		<-ctx.Done()
		return saga.Permanent(ctx.Err())
	}
	if err != nil {
		return err
	}
	st.Trail = append(slices.Clip(st.Trail), name)
	return nil
}

func (s *script) action(name string) saga.Action[order] {
	return func(ctx context.Context, st *order) error { return s.run(ctx, name, st) }
}

// names returns the names of the calls made so far.
func (s *script) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for _, c := range s.calls {
		names = append(names, c.name)
	}
	return names
}

func (s *script) callsOf(name string) []call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []call
	for _, c := range s.calls {
		if c.name == name {
			out = append(out, c)
		}
	}
	return out
}

var noJitter = saga.RetryPolicy{InitialBackoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second, Multiplier: 2, Jitter: -1}

// fourSteps is validate → payment → inventory → shipping, where validate has
// no compensation.
func fourSteps(s *script, opts ...saga.DefinitionOption) *saga.Definition[order] {
	step := func(name string, undo bool) saga.Step[order] {
		st := saga.Step[order]{Name: name, Action: s.action(name), Retry: noJitter, CompensationRetry: noJitter, Timeout: time.Second}
		if undo {
			st.Compensate = s.action("undo " + name)
		}
		return st
	}
	def, err := saga.NewDefinition("order", []saga.Step[order]{
		step("validate", false),
		step("payment", true),
		step("inventory", true),
		step("shipping", true),
	}, opts...)
	require.NoError(s.t, err)
	return def
}

// setup starts a harness for the four-step saga.
func setup(t *testing.T, cfg saga.Config, opts ...saga.DefinitionOption) (*sagatest.Harness[order], *script) {
	t.Helper()
	s := newScript(t)
	h := sagatest.New(t, fourSteps(s, opts...), cfg)
	s.clock = h.Clock
	return h, s
}

// kinds renders a log as "type step" lines, for exact sequence checks.
func kinds(events []saga.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Type.String()
		if e.Step != "" {
			out[i] += " " + e.Step
		}
		if e.Attempt != 0 {
			out[i] += fmt.Sprintf(" #%d", e.Attempt)
		}
	}
	return out
}

// requireConsistent checks the invariants of any log: seq 1..n, one run,
// one saga, unique IDs, started first.
func requireConsistent(t testing.TB, id string, events []saga.Event) {
	t.Helper()
	require.NotEmpty(t, events)
	require.Equal(t, saga.EventSagaStarted, events[0].Type)
	seen := map[string]bool{}
	for i, e := range events {
		require.Equal(t, uint64(i+1), e.Seq, "seq of event %d", i)
		require.Equal(t, id, e.SagaID)
		require.Equal(t, events[0].Run, e.Run)
		require.False(t, seen[e.ID()], "duplicate event ID %s", e.ID())
		seen[e.ID()] = true
	}
}

func logOf(t testing.TB, h *sagatest.Harness[order], id string) []saga.Event {
	t.Helper()
	events, err := h.Events(context.Background(), id)
	require.NoError(t, err)
	return events
}

func newHarness[S any](t *testing.T, def *saga.Definition[S], cfg saga.Config) *sagatest.Harness[S] {
	t.Helper()
	return sagatest.New(t, def, cfg)
}

// receive waits for a value from ch, failing the test after
// sagatest.WaitTimeout instead of hanging.
func receive[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sagatest.WaitTimeout)
	defer cancel()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		t.Fatalf("nothing received: %v", ctx.Err())
		panic("unreachable")
	}
}
