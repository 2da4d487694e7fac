package clock

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// defaultStart is where a Fake starts when given the zero time, so that
// tests print stable times.
var defaultStart = time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)

// Fake is a Clock whose time moves only when told to, for deterministic
// tests.
//
// Timers, tickers and AfterFunc calls made on a Fake fire only from
// [Fake.Advance] and [Fake.AdvanceToNext], in deadline order; timers with
// the same deadline fire in the order they were armed (by NewTimer,
// AfterFunc, NewTicker, Reset or a ticker's re-arming). While a timer fires,
// Now reports that timer's deadline.
//
// AfterFunc callbacks run synchronously in the goroutine that advances the
// clock, never while the Fake's lock is held, so a callback may use the
// same Fake (Now, AfterFunc, NewTimer, Stop, Reset, even Advance). An
// AfterFunc with d <= 0 is the one exception: like time.AfterFunc it runs f
// at once in a new goroutine.
//
// Channel timers and tickers deliver on a channel with a buffer of one and
// never block the advancing goroutine: a tick that finds the channel full
// is dropped, as with time.Ticker.
//
// A Fake is safe for concurrent use. The zero Fake is ready to use and
// starts at the same time as NewFake(time.Time{}). A Fake must not be
// copied after first use.
type Fake struct {
	mu      sync.Mutex
	started bool          // now has been initialised
	now     time.Time     // the fake's current time
	seq     uint64        // sequence number of the last arming
	timers  []*fakeTimer  // min-heap of armed timers by (when, seq)
	changed chan struct{} // closed when len(timers) changes; nil if nobody waits
}

var _ Clock = (*Fake)(nil)

// NewFake returns a Fake whose time starts at start. The zero start means
// 2025-01-01T00:00:00Z, so that tests get stable output. Any monotonic
// clock reading in start is dropped.
func NewFake(start time.Time) *Fake {
	if start.IsZero() {
		start = defaultStart
	}
	return &Fake{started: true, now: start.Round(0)}
}

// lock locks f.mu and initialises a zero Fake.
func (f *Fake) lock() {
	f.mu.Lock()
	if !f.started {
		f.started = true
		f.now = defaultStart
	}
}

// Now returns the fake's current time. Inside a callback or while a timer
// fires during Advance, it is that timer's deadline.
func (f *Fake) Now() time.Time {
	f.lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTimer returns a Timer that fires when the fake's time reaches Now()+d.
// If d <= 0, the time is in the timer's channel before NewTimer returns.
func (f *Fake) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{f: f, c: make(chan time.Time, 1), index: -1}
	f.lock()
	f.armLocked(t, d)
	f.mu.Unlock()
	return t
}

// AfterFunc returns a Timer that calls fn when the fake's time reaches
// Now()+d. The call happens synchronously inside Advance or AdvanceToNext,
// without the fake's lock held. If d <= 0, fn runs at once in a new
// goroutine, never in the caller's. A nil fn does nothing.
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	return f.afterFunc(func(time.Time) time.Duration { return d }, fn)
}

// AfterFuncAt is AfterFunc with the time to fire given, not the wait: it
// reads the fake's time and arms the timer under one lock, so that an
// Advance running at the same moment cannot push the call past t. If t is
// not after Now(), fn runs at once in a new goroutine.
func (f *Fake) AfterFuncAt(t time.Time, fn func()) Timer {
	return f.afterFunc(t.Sub, fn)
}

// afterFunc arms a timer that calls fn after wait(now), with now the
// fake's time, read under the same lock.
func (f *Fake) afterFunc(wait func(now time.Time) time.Duration, fn func()) Timer {
	if fn == nil {
		fn = func() {}
	}
	t := &fakeTimer{f: f, fn: fn, index: -1}
	f.lock()
	run := f.armLocked(t, wait(f.now))
	f.mu.Unlock()
	if run {
		go fn()
	}
	return t
}

// NewTicker returns a Ticker that ticks every d of fake time, starting at
// Now()+d. d <= 0 is treated as 1ns. When Advance crosses several periods,
// each period fires in order (dropping ticks that find the channel full).
func (f *Fake) NewTicker(d time.Duration) Ticker {
	d = positive(d)
	t := &fakeTimer{f: f, c: make(chan time.Time, 1), period: d, index: -1}
	f.lock()
	f.armLocked(t, d)
	f.mu.Unlock()
	return (*fakeTicker)(t)
}

// Advance moves the fake's time forward by d. It fires, one by one, every
// timer whose deadline is at or before Now()+d, in deadline order (ties in
// arming order), setting Now to each deadline just before firing it; then it
// sets Now to Now()+d. Timers armed by callbacks during Advance whose
// deadlines fall inside the window fire in the same call. When Advance
// returns, every due callback has returned. d <= 0 changes nothing: time
// never goes backwards.
func (f *Fake) Advance(d time.Duration) {
	f.lock()
	target := f.now
	if d > 0 {
		target = target.Add(d)
	}
	f.mu.Unlock()
	f.advanceTo(target)
}

// AdvanceToNext moves the fake's time to the earliest deadline of an armed
// timer and fires everything due at that instant, as Advance would. It
// returns how far time moved and true, or 0 and false if no timer was
// armed (then time does not move).
func (f *Fake) AdvanceToNext() (time.Duration, bool) {
	f.lock()
	if len(f.timers) == 0 {
		f.mu.Unlock()
		return 0, false
	}
	target := f.timers[0].when
	moved := target.Sub(f.now)
	f.mu.Unlock()
	f.advanceTo(target)
	return moved, true
}

// Timers returns the number of armed timers and tickers: those made or
// reset and not yet fired or stopped. A ticker counts until it is stopped.
func (f *Fake) Timers() int {
	f.lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// BlockUntil waits until at least n timers and tickers are armed, so a test
// can advance the clock once the code under test is waiting on it. It
// returns nil as soon as the count is reached, or an error wrapping
// ctx.Err() if ctx ends first. It never polls.
func (f *Fake) BlockUntil(ctx context.Context, n int) error {
	for {
		f.lock()
		have := len(f.timers)
		if have >= n {
			f.mu.Unlock()
			return nil
		}
		if f.changed == nil {
			f.changed = make(chan struct{})
		}
		changed := f.changed
		f.mu.Unlock()

		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("clock: waiting for %d armed timers, have %d: %w", n, have, ctx.Err())
		}
	}
}

// advanceTo fires every timer due at or before target, then moves now to
// target if it is later.
func (f *Fake) advanceTo(target time.Time) {
	for {
		f.lock()
		if len(f.timers) == 0 || f.timers[0].when.After(target) {
			if target.After(f.now) {
				f.now = target
			}
			f.mu.Unlock()
			return
		}
		fn := f.fireLocked(f.timers[0])
		f.mu.Unlock()
		if fn != nil {
			fn()
		}
	}
}

// fireLocked fires t, the earliest armed timer: it moves now to t's
// deadline, then delivers on t's channel and re-arms a ticker, or disarms
// t and returns the callback to run once the lock is released.
func (f *Fake) fireLocked(t *fakeTimer) func() {
	if t.when.After(f.now) {
		f.now = t.when
	}
	if t.fn != nil {
		f.removeLocked(t)
		return t.fn
	}
	select {
	case t.c <- t.when:
	default: // full: drop the tick, as time.Ticker does
	}
	if t.period > 0 {
		f.seq++
		t.seq = f.seq
		t.when = t.when.Add(t.period)
		f.down(t.index)
		return nil
	}
	f.removeLocked(t)
	return nil
}

// armLocked arms t to fire after d. For d <= 0 a channel timer receives now
// at once; for an AfterFunc timer armLocked reports true and the caller must
// run t.fn in a new goroutine after unlocking. t must not be armed.
func (f *Fake) armLocked(t *fakeTimer, d time.Duration) (runNow bool) {
	if d <= 0 {
		if t.fn != nil {
			return true
		}
		select {
		case t.c <- f.now:
		default:
		}
		return false
	}
	f.seq++
	t.seq = f.seq
	t.when = f.now.Add(d)
	t.index = len(f.timers)
	f.timers = append(f.timers, t)
	f.up(t.index)
	f.notifyLocked()
	return false
}

// disarmLocked disarms t and discards any value waiting in its channel. It
// reports whether t was armed or a value was discarded.
func (f *Fake) disarmLocked(t *fakeTimer) bool {
	active := f.removeLocked(t)
	if t.c != nil {
		select {
		case <-t.c:
			active = true
		default:
		}
	}
	return active
}

// removeLocked removes t from the heap and reports whether it was there.
func (f *Fake) removeLocked(t *fakeTimer) bool {
	i := t.index
	if i < 0 {
		return false
	}
	last := len(f.timers) - 1
	if i != last {
		f.swap(i, last)
	}
	f.timers[last] = nil
	f.timers = f.timers[:last]
	t.index = -1
	if i != last && !f.down(i) {
		f.up(i)
	}
	f.notifyLocked()
	return true
}

// notifyLocked wakes BlockUntil callers after the number of armed timers
// changed.
func (f *Fake) notifyLocked() {
	if f.changed != nil {
		close(f.changed)
		f.changed = nil
	}
}

// less orders the heap by deadline, then by arming order.
func (f *Fake) less(i, j int) bool {
	a, b := f.timers[i], f.timers[j]
	if a.when.Equal(b.when) {
		return a.seq < b.seq
	}
	return a.when.Before(b.when)
}

func (f *Fake) swap(i, j int) {
	h := f.timers
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

// up restores the heap invariant by moving element i towards the root.
func (f *Fake) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !f.less(i, parent) {
			return
		}
		f.swap(i, parent)
		i = parent
	}
}

// down restores the heap invariant by moving element i towards the leaves
// and reports whether it moved.
func (f *Fake) down(i int) bool {
	start, n := i, len(f.timers)
	for {
		child := 2*i + 1
		if child >= n {
			break
		}
		if right := child + 1; right < n && f.less(right, child) {
			child = right
		}
		if !f.less(child, i) {
			break
		}
		f.swap(i, child)
		i = child
	}
	return i > start
}

// fakeTimer is a timer, AfterFunc or ticker on a Fake. Its fields other
// than f, c, fn are guarded by f.mu.
type fakeTimer struct {
	f      *Fake
	c      chan time.Time // nil for AfterFunc timers
	fn     func()         // nil for channel timers and tickers
	period time.Duration  // > 0 for tickers
	when   time.Time      // deadline while armed
	seq    uint64         // arming order, breaks ties between equal deadlines
	index  int            // position in f.timers, -1 when not armed
}

var _ Timer = (*fakeTimer)(nil)

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.f.lock()
	defer t.f.mu.Unlock()
	return t.f.disarmLocked(t)
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	f := t.f
	f.lock()
	active := f.disarmLocked(t)
	run := f.armLocked(t, d)
	f.mu.Unlock()
	if run {
		go t.fn()
	}
	return active
}

// fakeTicker is the Ticker view of a fakeTimer with a period.
type fakeTicker fakeTimer

var _ Ticker = (*fakeTicker)(nil)

func (tk *fakeTicker) C() <-chan time.Time { return tk.c }

func (tk *fakeTicker) Stop() {
	t := (*fakeTimer)(tk)
	t.f.lock()
	defer t.f.mu.Unlock()
	t.f.disarmLocked(t)
}

func (tk *fakeTicker) Reset(d time.Duration) {
	t := (*fakeTimer)(tk)
	d = positive(d)
	t.f.lock()
	defer t.f.mu.Unlock()
	t.f.disarmLocked(t)
	t.period = d
	t.f.armLocked(t, d)
}
