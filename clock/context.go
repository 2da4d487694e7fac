package clock

import (
	"context"
	"sync"
	"time"
)

// Sleep waits until d has passed on c. It returns nil once d has passed, or
// ctx.Err() if ctx ends first. If d <= 0 it returns at once: nil, or
// ctx.Err() if ctx is already done. Sleep stops its timer before returning
// in every case. A nil c means Real.
func Sleep(ctx context.Context, c Clock, d time.Duration) error {
	if err := ctx.Err(); err != nil || d <= 0 {
		return err
	}
	t := orReal(c).NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WithTimeout returns WithDeadline(parent, c, c.Now().Add(d)). With Real (or
// a nil c) it is exactly context.WithTimeout.
func WithTimeout(parent context.Context, c Clock, d time.Duration) (context.Context, context.CancelFunc) {
	c = orReal(c)
	if _, ok := c.(realClock); ok {
		return context.WithTimeout(parent, d)
	}
	return WithDeadline(parent, c, c.Now().Add(d))
}

// WithDeadline returns a copy of parent that is done when c reaches
// deadline, when parent is done, or when the returned CancelFunc is called,
// whichever happens first. With Real (or a nil c) it is exactly
// context.WithDeadline.
//
// With any other clock, such as a Fake, the returned context behaves like
// one from context.WithDeadline but follows c instead of the wall clock:
//   - Deadline reports deadline, unless the parent's deadline is earlier,
//     in which case the parent's deadline applies, as in package context.
//   - When c reaches deadline (through c.AfterFunc) the context is done and
//     Err returns context.DeadlineExceeded, as do contexts derived from it;
//     context.Cause returns context.DeadlineExceeded too. For a Fake this
//     happens synchronously inside Advance.
//   - When parent is done, the context is done with parent's Err and Cause.
//     This is noticed through context.AfterFunc, so it may lag slightly
//     behind parent.
//   - Calling the CancelFunc makes Err return context.Canceled and stops
//     the clock timer.
//
// If deadline is not after c.Now(), the context is done before WithDeadline
// returns. No goroutine is left behind once the context is done, and the
// clock's timer is stopped.
func WithDeadline(parent context.Context, c Clock, deadline time.Time) (context.Context, context.CancelFunc) {
	c = orReal(c)
	if _, ok := c.(realClock); ok {
		return context.WithDeadline(parent, deadline)
	}
	if cur, ok := parent.Deadline(); ok && cur.Before(deadline) {
		// The parent's deadline comes first and already covers us.
		return context.WithCancel(parent)
	}

	dc := &deadlineCtx{Context: parent, deadline: deadline, done: make(chan struct{})}
	if err := parent.Err(); err != nil {
		dc.cancel(err)
	} else if !deadline.After(c.Now()) {
		dc.cancel(context.DeadlineExceeded)
	} else {
		// Hold the lock so that neither callback sees the fields unset.
		dc.mu.Lock()
		dc.timer = AfterFuncAt(c, deadline, func() { dc.cancel(context.DeadlineExceeded) })
		dc.stopParent = context.AfterFunc(parent, func() { dc.cancel(parent.Err()) })
		dc.mu.Unlock()
	}

	// The context handed out is a standard one derived from dc: package
	// context then cancels it synchronously through dc.AfterFunc, copies
	// dc's error (so its own children see DeadlineExceeded too) and keeps
	// its own cause.
	ctx, cancel := context.WithCancel(dc)
	return ctx, func() {
		cancel()
		dc.release()
	}
}

// deadlineCtx is done when a clock reaches its deadline or its parent is
// done. It is the parent of the context returned by WithDeadline for clocks
// other than Real; package context finds its AfterFunc method and uses it
// instead of starting a goroutine.
type deadlineCtx struct {
	context.Context // the parent; provides Value

	deadline time.Time
	done     chan struct{} // closed by cancel

	mu         sync.Mutex
	err        error        // set by cancel
	timer      Timer        // the clock timer; nil once stopped
	stopParent func() bool  // unregisters from the parent; nil once done
	funcs      []*afterFunc // registered by AfterFunc, run by cancel
}

// afterFunc is one function registered with deadlineCtx.AfterFunc.
type afterFunc struct{ f func() }

func (c *deadlineCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *deadlineCtx) Done() <-chan struct{} { return c.done }

func (c *deadlineCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// AfterFunc arranges for f to run once c is done and returns a function
// that cancels the arrangement, reporting whether it did. Package context
// calls it to link a child to c. If c is already done, f runs in a new
// goroutine; otherwise cancel calls it synchronously.
func (c *deadlineCtx) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	a := &afterFunc{f: f}
	c.funcs = append(c.funcs, a)
	c.mu.Unlock()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, x := range c.funcs {
			if x == a {
				c.funcs = append(c.funcs[:i], c.funcs[i+1:]...)
				return true
			}
		}
		return false
	}
}

// cancel makes c done with err, releases the timer and the parent link,
// and runs the registered functions. Only the first call has an effect.
func (c *deadlineCtx) cancel(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	close(c.done)
	funcs := c.funcs
	c.funcs = nil
	c.mu.Unlock()

	c.release()
	for _, a := range funcs {
		a.f()
	}
}

// release stops the clock timer and unregisters from the parent. It may be
// called any number of times.
func (c *deadlineCtx) release() {
	c.mu.Lock()
	timer, stopParent := c.timer, c.stopParent
	c.timer, c.stopParent = nil, nil
	c.mu.Unlock()
	if timer != nil {
		timer.Stop()
	}
	if stopParent != nil {
		stopParent()
	}
}
