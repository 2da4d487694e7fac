package clock_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/clock"
)

// start is where NewFake(time.Time{}) starts.
var start = time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)

// setup returns a fake clock at start.
func setup(t *testing.T) *clock.Fake {
	t.Helper()
	f := clock.NewFake(time.Time{})
	require.Equal(t, start, f.Now())
	return f
}

// pending returns the value waiting in c without blocking.
func pending(c <-chan time.Time) (time.Time, bool) {
	select {
	case v := <-c:
		return v, true
	default:
		return time.Time{}, false
	}
}

// event is one firing seen by a recorder.
type event struct {
	name string
	at   time.Duration // Now()-start inside the callback
}

// recorder collects callback firings in order.
type recorder struct {
	f      *clock.Fake
	mu     sync.Mutex
	events []event
}

// fn returns a callback recording name and the fake's time.
func (r *recorder) fn(name string) func() {
	return func() {
		at := r.f.Now().Sub(start)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.events = append(r.events, event{name, at})
	}
}

// take returns and forgets the events recorded so far.
func (r *recorder) take() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

func TestNewFakeStart(t *testing.T) {
	t.Parallel()

	berlin := time.FixedZone("CET", 3600)
	withMono := clock.Real().Now()
	tests := []struct {
		name string
		fake func() *clock.Fake
		want time.Time
	}{
		{"zero start", func() *clock.Fake { return clock.NewFake(time.Time{}) }, start},
		{"zero value", func() *clock.Fake { return new(clock.Fake) }, start},
		{
			"explicit start",
			func() *clock.Fake { return clock.NewFake(time.Date(2030, 6, 1, 12, 0, 0, 0, berlin)) },
			time.Date(2030, 6, 1, 12, 0, 0, 0, berlin),
		},
		{"monotonic reading dropped", func() *clock.Fake { return clock.NewFake(withMono) }, withMono.Round(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.fake().Now()
			assert.True(t, tt.want.Equal(got), "got %v, want %v", got, tt.want)
			assert.Equal(t, tt.want.Location(), got.Location())
			assert.NotContains(t, got.String(), "m=")
		})
	}
}

func TestFakeAdvanceFiresInOrder(t *testing.T) {
	t.Parallel()

	type timer struct {
		name string
		d    time.Duration
	}
	tests := []struct {
		name      string
		timers    []timer
		advance   time.Duration
		want      []event
		wantArmed int
	}{
		{
			name:    "deadline order",
			timers:  []timer{{"c", 3 * time.Second}, {"a", time.Second}, {"b", 2 * time.Second}},
			advance: 3 * time.Second,
			want:    []event{{"a", time.Second}, {"b", 2 * time.Second}, {"c", 3 * time.Second}},
		},
		{
			name:    "ties in arming order",
			timers:  []timer{{"x", time.Second}, {"y", time.Second}, {"w", time.Millisecond}, {"z", time.Second}},
			advance: time.Second,
			want:    []event{{"w", time.Millisecond}, {"x", time.Second}, {"y", time.Second}, {"z", time.Second}},
		},
		{
			name:      "later timers wait",
			timers:    []timer{{"a", time.Second}, {"b", 2 * time.Second}},
			advance:   1500 * time.Millisecond,
			want:      []event{{"a", time.Second}},
			wantArmed: 1,
		},
		{
			name:      "nothing due",
			timers:    []timer{{"a", 2 * time.Second}},
			advance:   time.Second,
			wantArmed: 1,
		},
		{
			name:      "zero advance",
			timers:    []timer{{"a", time.Nanosecond}},
			advance:   0,
			wantArmed: 1,
		},
		{
			name:      "negative advance",
			timers:    []timer{{"a", time.Nanosecond}},
			advance:   -time.Hour,
			wantArmed: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			r := &recorder{f: f}
			for _, tm := range tt.timers {
				f.AfterFunc(tm.d, r.fn(tm.name))
			}
			f.Advance(tt.advance)
			assert.Equal(t, tt.want, r.take())
			assert.Equal(t, tt.wantArmed, f.Timers())
			assert.Equal(t, start.Add(max(tt.advance, 0)), f.Now())
		})
	}
}

func TestFakeTiesAcrossKindsAndResets(t *testing.T) {
	t.Parallel()
	f := setup(t)
	r := &recorder{f: f}

	// A channel timer and callbacks armed around it at the same deadline:
	// the callback armed before it sees an empty channel, the one after
	// sees the value.
	var before, after bool
	var tm clock.Timer
	f.AfterFunc(time.Second, func() { _, before = pending(tm.C()); r.fn("before")() })
	tm = f.NewTimer(time.Second)
	f.AfterFunc(time.Second, func() {
		var v time.Time
		v, after = pending(tm.C())
		assert.Equal(t, start.Add(time.Second), v)
		r.fn("after")()
	})

	// Reset gives a new place in the tie order.
	a := f.AfterFunc(2*time.Second, r.fn("a"))
	f.AfterFunc(2*time.Second, r.fn("b"))
	require.True(t, a.Reset(2*time.Second))

	f.Advance(2 * time.Second)
	assert.False(t, before)
	assert.True(t, after)
	assert.Equal(t, []event{
		{"before", time.Second}, {"after", time.Second},
		{"b", 2 * time.Second}, {"a", 2 * time.Second},
	}, r.take())
}

func TestFakeCallbackArmsInsideWindow(t *testing.T) {
	t.Parallel()
	f := setup(t)
	r := &recorder{f: f}

	var ch clock.Timer
	f.AfterFunc(time.Second, func() {
		r.fn("first")()
		f.AfterFunc(time.Second, r.fn("inside"))
		f.AfterFunc(5*time.Second, r.fn("outside"))
		ch = f.NewTimer(500 * time.Millisecond)
	})
	var self clock.Timer
	n := 0
	self = f.AfterFunc(time.Second, func() {
		n++
		r.fn(fmt.Sprint("self", n))()
		if n < 3 {
			assert.False(t, self.Reset(time.Second), "a firing timer is no longer active")
		}
	})

	f.Advance(3 * time.Second)
	assert.Equal(t, []event{
		{"first", time.Second}, {"self1", time.Second},
		{"inside", 2 * time.Second}, {"self2", 2 * time.Second},
		{"self3", 3 * time.Second},
	}, r.take())
	v, ok := pending(ch.C())
	require.True(t, ok)
	assert.Equal(t, start.Add(1500*time.Millisecond), v)
	assert.Equal(t, 1, f.Timers(), "only the timer outside the window is left")
	assert.Equal(t, start.Add(3*time.Second), f.Now())
}

func TestFakeAdvanceToNext(t *testing.T) {
	t.Parallel()
	f := setup(t)
	r := &recorder{f: f}

	moved, ok := f.AdvanceToNext()
	assert.False(t, ok)
	assert.Zero(t, moved)
	assert.Equal(t, start, f.Now())

	f.AfterFunc(5*time.Second, r.fn("c"))
	f.AfterFunc(3*time.Second, r.fn("a"))
	f.AfterFunc(3*time.Second, r.fn("b"))

	moved, ok = f.AdvanceToNext()
	require.True(t, ok)
	assert.Equal(t, 3*time.Second, moved)
	assert.Equal(t, []event{{"a", 3 * time.Second}, {"b", 3 * time.Second}}, r.take())
	assert.Equal(t, start.Add(3*time.Second), f.Now())

	moved, ok = f.AdvanceToNext()
	require.True(t, ok)
	assert.Equal(t, 2*time.Second, moved)
	assert.Equal(t, []event{{"c", 5 * time.Second}}, r.take())

	moved, ok = f.AdvanceToNext()
	assert.False(t, ok)
	assert.Zero(t, moved)
	assert.Equal(t, start.Add(5*time.Second), f.Now())
}

func TestFakeTimerStopReset(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		prepare func(f *clock.Fake, tm clock.Timer)
		act     func(tm clock.Timer) bool
		want    bool
		// wantAt is when the only value read after advancing far comes
		// from; negative means no value.
		wantAt time.Duration
	}{
		{
			name:   "stop armed",
			act:    clock.Timer.Stop,
			want:   true,
			wantAt: -1,
		},
		{
			name:    "stop fired, not received: drains",
			prepare: func(f *clock.Fake, _ clock.Timer) { f.Advance(time.Second) },
			act:     clock.Timer.Stop,
			want:    true,
			wantAt:  -1,
		},
		{
			name:    "stop fired and received",
			prepare: func(f *clock.Fake, tm clock.Timer) { f.Advance(time.Second); <-tm.C() },
			act:     clock.Timer.Stop,
			want:    false,
			wantAt:  -1,
		},
		{
			name:    "stop stopped",
			prepare: func(_ *clock.Fake, tm clock.Timer) { tm.Stop() },
			act:     clock.Timer.Stop,
			want:    false,
			wantAt:  -1,
		},
		{
			name:   "reset armed",
			act:    func(tm clock.Timer) bool { return tm.Reset(2 * time.Second) },
			want:   true,
			wantAt: 2 * time.Second,
		},
		{
			name:    "reset fired, not received: drains",
			prepare: func(f *clock.Fake, _ clock.Timer) { f.Advance(time.Second) },
			act:     func(tm clock.Timer) bool { return tm.Reset(time.Second) },
			want:    true,
			wantAt:  2 * time.Second,
		},
		{
			name:    "reset fired and received",
			prepare: func(f *clock.Fake, tm clock.Timer) { f.Advance(time.Second); <-tm.C() },
			act:     func(tm clock.Timer) bool { return tm.Reset(time.Second) },
			want:    false,
			wantAt:  2 * time.Second,
		},
		{
			name:    "reset stopped",
			prepare: func(_ *clock.Fake, tm clock.Timer) { tm.Stop() },
			act:     func(tm clock.Timer) bool { return tm.Reset(3 * time.Second) },
			want:    false,
			wantAt:  3 * time.Second,
		},
		{
			name:   "reset armed to zero",
			act:    func(tm clock.Timer) bool { return tm.Reset(0) },
			want:   true,
			wantAt: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			tm := f.NewTimer(time.Second)
			if tt.prepare != nil {
				tt.prepare(f, tm)
			}
			assert.Equal(t, tt.want, tt.act(tm))
			f.Advance(10 * time.Second)
			v, ok := pending(tm.C())
			if tt.wantAt < 0 {
				assert.False(t, ok, "unexpected value %v", v)
			} else if assert.True(t, ok, "no value") {
				assert.Equal(t, start.Add(tt.wantAt), v)
			}
			_, ok = pending(tm.C())
			assert.False(t, ok, "a second value")
			assert.Zero(t, f.Timers())
		})
	}
}

func TestFakeAfterFuncStopReset(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		prepare func(f *clock.Fake, tm clock.Timer)
		act     func(tm clock.Timer) bool
		want    bool
		wantAt  []time.Duration // when the callback runs
	}{
		{
			name: "stop armed",
			act:  clock.Timer.Stop,
			want: true,
		},
		{
			name:    "stop fired",
			prepare: func(f *clock.Fake, _ clock.Timer) { f.Advance(time.Second) },
			act:     clock.Timer.Stop,
			want:    false,
			wantAt:  []time.Duration{time.Second},
		},
		{
			name:   "reset armed",
			act:    func(tm clock.Timer) bool { return tm.Reset(2 * time.Second) },
			want:   true,
			wantAt: []time.Duration{2 * time.Second},
		},
		{
			name:    "reset fired runs again",
			prepare: func(f *clock.Fake, _ clock.Timer) { f.Advance(time.Second) },
			act:     func(tm clock.Timer) bool { return tm.Reset(time.Second) },
			want:    false,
			wantAt:  []time.Duration{time.Second, 2 * time.Second},
		},
		{
			name:    "reset stopped",
			prepare: func(_ *clock.Fake, tm clock.Timer) { tm.Stop() },
			act:     func(tm clock.Timer) bool { return tm.Reset(time.Second) },
			want:    false,
			wantAt:  []time.Duration{time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			r := &recorder{f: f}
			tm := f.AfterFunc(time.Second, r.fn("f"))
			assert.Nil(t, tm.C())
			if tt.prepare != nil {
				tt.prepare(f, tm)
			}
			assert.Equal(t, tt.want, tt.act(tm))
			f.Advance(10 * time.Second)
			var got []time.Duration
			for _, e := range r.take() {
				got = append(got, e.at)
			}
			assert.Equal(t, tt.wantAt, got)
			assert.Zero(t, f.Timers())
		})
	}
}

func TestFakeNonPositiveDurations(t *testing.T) {
	t.Parallel()

	for _, d := range []time.Duration{0, -time.Second} {
		t.Run(fmt.Sprint(d), func(t *testing.T) {
			t.Parallel()
			f := setup(t)

			tm := f.NewTimer(d)
			v, ok := pending(tm.C())
			require.True(t, ok, "NewTimer(%v) must deliver before returning", d)
			assert.Equal(t, start, v)
			assert.False(t, tm.Stop())

			f.Advance(time.Second)
			assert.False(t, tm.Reset(d))
			v, ok = pending(tm.C())
			require.True(t, ok, "Reset(%v) must deliver before returning", d)
			assert.Equal(t, start.Add(time.Second), v)

			// AfterFunc runs f in a new goroutine: f waits for AfterFunc
			// to return, which would deadlock if it ran in the caller.
			returned, ran := make(chan struct{}), make(chan struct{})
			af := f.AfterFunc(d, func() { <-returned; close(ran) })
			close(returned)
			<-ran
			assert.False(t, af.Stop())

			returned, ran = make(chan struct{}), make(chan struct{})
			af = f.AfterFunc(time.Hour, func() { <-returned; close(ran) })
			assert.True(t, af.Reset(d))
			close(returned)
			<-ran

			tk := f.NewTicker(d)
			f.Advance(time.Nanosecond)
			v, ok = pending(tk.C())
			require.True(t, ok, "NewTicker(%v) ticks every nanosecond", d)
			assert.Equal(t, start.Add(time.Second+time.Nanosecond), v)
			tk.Reset(d)
			f.Advance(time.Nanosecond)
			v, ok = pending(tk.C())
			require.True(t, ok, "Reset(%v) ticks every nanosecond", d)
			assert.Equal(t, start.Add(time.Second+2*time.Nanosecond), v)
			tk.Stop()

			assert.Zero(t, f.Timers())
		})
	}
}

func TestFakeAfterFuncNil(t *testing.T) {
	t.Parallel()
	f := setup(t)
	tm := f.AfterFunc(time.Second, nil)
	f.Advance(time.Second) // no panic
	assert.False(t, tm.Stop())
	assert.Zero(t, f.Timers())
}

func TestFakeTicker(t *testing.T) {
	t.Parallel()
	f := setup(t)
	tk := f.NewTicker(time.Second)
	require.Equal(t, 1, f.Timers())

	expect := func(at time.Duration) {
		t.Helper()
		v, ok := pending(tk.C())
		if at < 0 {
			require.False(t, ok, "unexpected tick at %v", v.Sub(start))
			return
		}
		require.True(t, ok, "no tick, want one at %v", at)
		require.Equal(t, start.Add(at), v)
	}

	f.Advance(999 * time.Millisecond)
	expect(-1)
	f.Advance(time.Millisecond)
	expect(time.Second)

	// Three periods at once: the first tick fills the channel, the others
	// are dropped, and the ticker is re-armed after the last.
	f.Advance(3 * time.Second)
	expect(2 * time.Second)
	expect(-1)
	f.Advance(time.Second)
	expect(5 * time.Second)

	// Reset restarts the period from now.
	tk.Reset(2 * time.Second)
	f.Advance(time.Second)
	expect(-1)
	f.Advance(time.Second)
	expect(7 * time.Second)

	// Reset discards a tick not yet received.
	f.Advance(2 * time.Second)
	tk.Reset(time.Second)
	expect(-1)
	f.Advance(time.Second)
	expect(10 * time.Second)
	require.Equal(t, 1, f.Timers())

	// Stop discards a pending tick and disarms the ticker.
	f.Advance(time.Second)
	tk.Stop()
	expect(-1)
	assert.Zero(t, f.Timers())
	f.Advance(10 * time.Second)
	expect(-1)

	// A stopped ticker can be restarted.
	tk.Reset(time.Second)
	f.Advance(time.Second)
	expect(22 * time.Second)
	tk.Stop()
}

func TestFakeTickerFiresEachPeriodInOrder(t *testing.T) {
	t.Parallel()
	f := setup(t)
	tk := f.NewTicker(time.Second)
	defer tk.Stop()

	// Callbacks between the ticks see each tick in turn.
	var got []time.Duration
	for _, at := range []time.Duration{1500, 2500, 3500} {
		f.AfterFunc(at*time.Millisecond, func() {
			v, ok := pending(tk.C())
			assert.True(t, ok, "no tick before %v", f.Now().Sub(start))
			got = append(got, v.Sub(start))
		})
	}
	f.Advance(4 * time.Second)
	assert.Equal(t, []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}, got)
	v, ok := pending(tk.C())
	require.True(t, ok)
	assert.Equal(t, start.Add(4*time.Second), v)
}

func TestFakeCallbacksMayUseTheFake(t *testing.T) {
	t.Parallel()
	f := setup(t)
	r := &recorder{f: f}

	later := f.AfterFunc(2*time.Second, r.fn("stopped"))
	tm := f.NewTimer(time.Hour)
	f.AfterFunc(time.Second, func() {
		r.fn("reenter")()
		assert.Equal(t, start.Add(time.Second), f.Now())
		assert.Equal(t, 2, f.Timers())
		assert.True(t, later.Stop())
		assert.True(t, tm.Reset(time.Second))
		f.AfterFunc(500*time.Millisecond, r.fn("armed"))
		tk := f.NewTicker(time.Minute)
		tk.Stop()
		// A nested Advance fires what is due inside it.
		f.Advance(600 * time.Millisecond)
		assert.Equal(t, start.Add(1600*time.Millisecond), f.Now())
	})

	f.Advance(time.Second)
	assert.Equal(t, []event{{"reenter", time.Second}, {"armed", 1500 * time.Millisecond}}, r.take())
	assert.Equal(t, start.Add(1600*time.Millisecond), f.Now(), "time never goes back")
	f.Advance(400 * time.Millisecond)
	v, ok := pending(tm.C())
	require.True(t, ok)
	assert.Equal(t, start.Add(2*time.Second), v)
	assert.Empty(t, r.take())
	assert.Zero(t, f.Timers())
}

func TestFakeBlockUntil(t *testing.T) {
	t.Parallel()

	t.Run("returns once timers are armed", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		done := make(chan error, 3)
		for range 3 {
			go func() { done <- clock.Sleep(t.Context(), f, time.Second) }()
		}
		require.NoError(t, f.BlockUntil(t.Context(), 3))
		f.Advance(time.Second)
		for range 3 {
			require.NoError(t, <-done)
		}
		assert.Zero(t, f.Timers())
	})

	t.Run("already satisfied", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		require.NoError(t, f.BlockUntil(ctx, 0))
		tm := f.NewTimer(time.Second)
		require.NoError(t, f.BlockUntil(ctx, 1))
		tm.Stop()
	})

	t.Run("context already done", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		err := f.BlockUntil(ctx, 1)
		require.ErrorIs(t, err, context.Canceled)
		assert.Contains(t, err.Error(), "waiting for 1 armed timers, have 0")
	})

	t.Run("context ends while waiting", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		ctx, cancel := clock.WithTimeout(t.Context(), f, time.Minute)
		defer cancel()
		errc := make(chan error, 1)
		go func() { errc <- f.BlockUntil(ctx, 2) }()
		// Only the timeout's own timer is ever armed, so BlockUntil(ctx, 2)
		// can only end through ctx.
		require.NoError(t, f.BlockUntil(t.Context(), 1))
		f.Advance(time.Minute)
		require.ErrorIs(t, <-errc, context.DeadlineExceeded)
	})
}

// TestFakeConcurrent arms, stops and resets timers from many goroutines
// while another advances the clock, then checks every callback ran exactly
// as often as the Stop and Reset results say it should.
func TestFakeConcurrent(t *testing.T) {
	t.Parallel()
	f := setup(t)

	const workers, perWorker = 8, 300
	type tracked struct{ fired, want atomic.Int32 }
	all := make([]tracked, workers*perWorker)

	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			default:
				f.Advance(time.Millisecond)
			}
		}
	}()

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			dur := func() time.Duration { return time.Duration(1+rng.IntN(20)) * time.Millisecond }
			tk := f.NewTicker(dur())
			defer tk.Stop()
			for i := range perWorker {
				tr := &all[w*perWorker+i]
				tr.want.Store(1)
				tm := f.AfterFunc(dur(), func() { tr.fired.Add(1) })
				switch rng.IntN(4) {
				case 0:
					if tm.Stop() {
						tr.want.Add(-1)
					}
				case 1:
					if !tm.Reset(dur()) {
						tr.want.Add(1) // it had fired: it fires again
					}
				case 2:
					// A channel timer that is never read is always
					// stopped by Stop: either armed or drained.
					ct := f.NewTimer(dur())
					assert.True(t, ct.Stop())
					_, ok := pending(ct.C())
					assert.False(t, ok, "value after Stop")
				default:
					tk.Reset(dur())
					pending(tk.C())
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-stopped

	f.Advance(time.Hour)
	require.Zero(t, f.Timers())
	for i := range all {
		require.Equal(t, all[i].want.Load(), all[i].fired.Load(), "timer %d", i)
	}
}

func BenchmarkFakeAdvance(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprint("timers=", n), func(b *testing.B) {
			f := clock.NewFake(time.Time{})
			fn := func() {}
			tk := f.NewTicker(time.Millisecond)
			defer tk.Stop()
			b.ReportAllocs()
			for b.Loop() {
				for i := range n {
					f.AfterFunc(time.Duration(1+i%97)*time.Millisecond, fn)
				}
				f.Advance(100 * time.Millisecond)
			}
		})
	}
}

// onlyAfterFunc hides a Fake's AfterFuncAt, as a Clock of the caller's own
// would not have one.
type onlyAfterFunc struct{ clock.Clock }

func TestAfterFuncAtFiresAtTheGivenTime(t *testing.T) {
	for name, wrap := range map[string]func(*clock.Fake) clock.Clock{
		"fake":        func(f *clock.Fake) clock.Clock { return f },
		"other clock": func(f *clock.Fake) clock.Clock { return onlyAfterFunc{f} },
	} {
		t.Run(name, func(t *testing.T) {
			f := clock.NewFake(start)
			c := wrap(f)
			fired := make(chan time.Time, 2)
			clock.AfterFuncAt(c, start.Add(time.Second), func() { fired <- f.Now() })
			f.Advance(time.Second - 1)
			assert.Empty(t, fired, "before its time")
			f.Advance(1)
			assert.Equal(t, start.Add(time.Second), <-fired, "at its time")

			clock.AfterFuncAt(c, start, func() { fired <- f.Now() })
			assert.Equal(t, start.Add(time.Second), <-fired, "a time passed fires at once")

			timer := clock.AfterFuncAt(c, f.Now().Add(time.Minute), func() { fired <- f.Now() })
			assert.True(t, timer.Stop(), "stopped before it fired")
			f.Advance(time.Hour)
			assert.Empty(t, fired)
		})
	}
}

// A Fake arms the timer at the time given even while another goroutine
// advances it: the call is never late.
func TestAfterFuncAtIsNeverLateOnAFake(t *testing.T) {
	for range 200 {
		f := clock.NewFake(start)
		at := start.Add(time.Second)
		fired := make(chan time.Time, 1)
		var wg sync.WaitGroup
		wg.Go(func() { f.Advance(time.Second) })
		clock.AfterFuncAt(f, at, func() { fired <- f.Now() })
		wg.Wait()
		assert.Equal(t, at, <-fired)
	}
}
