// Package clock is the library's only window onto wall-clock time.
//
// Every other package takes a [Clock] instead of calling time.Now,
// time.Sleep, time.After or time.NewTimer, so that tests can swap in a
// [Fake] and move time by hand. [Real] wraps package time; [Fake] is a
// deterministic, manually advanced clock for tests.
//
// The helpers [Sleep], [WithDeadline] and [WithTimeout] work with any Clock:
// with Real they are the standard library functions, with a Fake they wait
// for the fake's time instead of the wall clock.
package clock

import "time"

// Clock tells the time and makes timers.
//
// Implementations are safe for concurrent use by multiple goroutines.
// AfterFunc never calls f synchronously: f runs later, in a goroutine of the
// implementation's choosing, never while the caller of AfterFunc is still
// inside AfterFunc.
type Clock interface {
	// Now returns the current time on this clock.
	Now() time.Time

	// NewTimer returns a Timer that sends the clock's time on its channel
	// once, after at least d has passed. If d <= 0 the timer fires at once.
	NewTimer(d time.Duration) Timer

	// AfterFunc waits until d has passed and then calls f in its own
	// goroutine (a Fake may instead call it from the goroutine advancing
	// the fake). The returned Timer has a nil channel and can be used to
	// cancel the call. A nil f is treated as a function that does nothing.
	AfterFunc(d time.Duration, f func()) Timer

	// NewTicker returns a Ticker that sends the clock's time on its
	// channel every d. Ticks that find the channel full are dropped.
	// Unlike time.NewTicker it never panics: d <= 0 is treated as the
	// smallest positive duration (1ns).
	NewTicker(d time.Duration) Ticker
}

// Timer is a single event, like *time.Timer. Its methods are safe for
// concurrent use.
type Timer interface {
	// C returns the channel on which the time is delivered. It is nil for
	// timers made by AfterFunc.
	C() <-chan time.Time

	// Stop prevents the timer from firing. It returns true if the call
	// stopped the timer, false if the timer had already fired (and, for a
	// channel timer, its value had been received) or had been stopped.
	// After Stop returns, no stale value is received from C.
	Stop() bool

	// Reset changes the timer to fire after d, as (*time.Timer).Reset
	// does since Go 1.23: it returns true if the timer was active, and no
	// value prepared before the call is received from C after it. For an
	// AfterFunc timer that has already fired, Reset schedules f to run
	// again and returns false.
	Reset(d time.Duration) bool
}

// Ticker delivers ticks at intervals, like *time.Ticker. Its methods are
// safe for concurrent use.
type Ticker interface {
	// C returns the channel on which the ticks are delivered.
	C() <-chan time.Time

	// Stop turns off the ticker. No more ticks are sent after Stop
	// returns, and a tick not yet received is discarded.
	Stop()

	// Reset stops the ticker and restarts it with period d; the next tick
	// arrives after d. A tick not yet received is discarded. As with
	// NewTicker, d <= 0 is treated as 1ns instead of panicking.
	Reset(d time.Duration)
}

// Real returns the Clock backed by package time. It is a single shared
// value: calling Real is free and allocates nothing.
func Real() Clock { return realClock{} }

// orReal returns c, or Real if c is nil.
func orReal(c Clock) Clock {
	if c == nil {
		return realClock{}
	}
	return c
}

// positive returns d, or the smallest positive duration if d <= 0.
func positive(d time.Duration) time.Duration {
	if d <= 0 {
		return 1
	}
	return d
}

// realClock is the Clock returned by Real.
type realClock struct{}

var _ Clock = realClock{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

func (realClock) AfterFunc(d time.Duration, f func()) Timer {
	if f == nil {
		f = func() {}
	}
	return realTimer{time.AfterFunc(d, f)}
}

func (realClock) NewTicker(d time.Duration) Ticker {
	return realTicker{time.NewTicker(positive(d))}
}

// realTimer adapts *time.Timer to Timer.
type realTimer struct{ t *time.Timer }

var _ Timer = realTimer{}

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }

// realTicker adapts *time.Ticker to Ticker.
type realTicker struct{ t *time.Ticker }

var _ Ticker = realTicker{}

func (r realTicker) C() <-chan time.Time   { return r.t.C }
func (r realTicker) Stop()                 { r.t.Stop() }
func (r realTicker) Reset(d time.Duration) { r.t.Reset(positive(d)) }

// AfterFuncAt calls f, as c.AfterFunc does, once c reaches t; if t has
// passed, f runs at once (in a goroutine of its own). On a Fake the time
// is read and the timer armed in one step, so a concurrent Advance to t
// or beyond cannot make the call late; on other clocks the wait is
// t - c.Now().
func AfterFuncAt(c Clock, t time.Time, f func()) Timer {
	if at, ok := c.(interface {
		AfterFuncAt(t time.Time, f func()) Timer
	}); ok {
		return at.AfterFuncAt(t, f)
	}
	return c.AfterFunc(t.Sub(c.Now()), f)
}
