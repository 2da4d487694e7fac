package saga

import (
	"sync"
	"sync/atomic"
	"time"
)

// BreakerPolicy configures the circuit breakers of a coordinator. A breaker
// opens after Failures consecutive failed attempts of the steps that name
// it, fails every attempt fast while open, and after CoolDown lets one
// attempt through (half-open): its success closes the breaker, its failure
// opens it again. Permanent errors are answers from a working resource, so
// they count as successes. Attempts rejected by an open breaker do not
// spend the step's retries; the instance waits for the cool-down and tries
// again.
type BreakerPolicy struct {
	// Failures is the number of consecutive failures that opens a breaker.
	// Defaults to 5.
	Failures int
	// CoolDown is how long a breaker stays open. Defaults to 30s.
	CoolDown time.Duration
}

func (p BreakerPolicy) withDefaults() BreakerPolicy {
	if p.Failures <= 0 {
		p.Failures = 5
	}
	if p.CoolDown <= 0 {
		p.CoolDown = 30 * time.Second
	}
	return p
}

// BreakerState is the state of a circuit breaker.
type BreakerState uint8

// The states of a circuit breaker.
const (
	BreakerClosed BreakerState = iota + 1
	BreakerOpen
	BreakerHalfOpen
)

// String returns "closed", "open" or "half-open".
func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half-open"
	}
	return "BreakerState(?)"
}

// MarshalText encodes the state as its name.
func (s BreakerState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// breaker is one named circuit breaker, shared by every instance.
type breaker struct {
	policy BreakerPolicy

	// quiet is set while the breaker is closed with no failure counted,
	// which is nearly always: then allow and a success need no lock.
	quiet atomic.Bool

	mu       sync.Mutex
	state    BreakerState
	failures int       // consecutive failures while closed
	openedAt time.Time // when it last opened
	probeAt  time.Time // when the half-open probe was let through
}

func newBreaker(p BreakerPolicy) *breaker {
	b := &breaker{policy: p, state: BreakerClosed}
	b.quiet.Store(true)
	return b
}

// settle updates quiet after a change. It expects b.mu held.
func (b *breaker) settle() {
	b.quiet.Store(b.state == BreakerClosed && b.failures == 0)
}

// allow reports whether an attempt may call the resource now, and if not,
// when to try again: at the returned time, or when it is zero, after the
// attempt's own backoff. In half-open state one probe goes through; a probe
// that never reports back (its process stopped) is replaced after a
// cool-down.
func (b *breaker) allow(now time.Time) (bool, time.Time) {
	if b.quiet.Load() {
		return true, time.Time{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case BreakerOpen:
		reopen := b.openedAt.Add(b.policy.CoolDown)
		if now.Before(reopen) {
			return false, reopen
		}
		b.state, b.probeAt = BreakerHalfOpen, now
		b.settle()
		return true, time.Time{}
	case BreakerHalfOpen:
		if !now.Before(b.probeAt.Add(b.policy.CoolDown)) {
			b.probeAt = now
			return true, time.Time{}
		}
		return false, time.Time{}
	}
	return true, time.Time{}
}

// record reports the outcome of an attempt that allow let through.
func (b *breaker) record(now time.Time, failed bool) {
	if !failed && b.quiet.Load() {
		return // closed with no failures: nothing to reset
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	defer b.settle()
	if !failed {
		b.state, b.failures = BreakerClosed, 0
		return
	}
	switch b.state {
	case BreakerHalfOpen:
		b.state, b.openedAt = BreakerOpen, now
	case BreakerClosed:
		b.failures++
		if b.failures >= b.policy.Failures {
			b.state, b.openedAt, b.failures = BreakerOpen, now, 0
		}
	}
}

// current returns the state as a caller at now would see it.
func (b *breaker) current(now time.Time) BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == BreakerOpen && !now.Before(b.openedAt.Add(b.policy.CoolDown)) {
		return BreakerHalfOpen
	}
	return b.state
}
