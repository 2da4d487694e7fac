package saga

import (
	"context"
	"sync"
	"time"

	"github.com/sagaflow/sagaflow/clock"
)

// attemptCtx is the context an action or compensation runs under: it
// carries the attempt's StepInfo and ends when the engine's clock reaches
// the attempt's deadline, when the coordinator abandons its attempts (its
// parent ends), or when the attempt returns, whichever comes first.
//
// Its Done channel, and the clock timer that closes it, are made only when
// Done is first called: an action that never waits on its context costs no
// timer, and many actions (an in-memory call, a quick computation) never
// do. Err needs no channel: it compares the clock with the deadline, and
// ends the context when it finds it over, so that Err and Done agree. The
// attempt's StepInfo lives inside it, and what every attempt of a
// coordinator shares outside, so that an attempt costs one small
// allocation: 112 bytes, where it took 160 with its parent, clock and
// StepInfo whole (BenchmarkOrder: 4.74 -> 4.46 KiB per order).
type attemptCtx struct {
	env      *attemptEnv
	deadline time.Time
	step     stepContext

	mu   sync.Mutex
	err  error        // why the context ended; nil while it lives
	wait *attemptWait // made by Done
}

// attemptWait is what Done makes for a context.
type attemptWait struct {
	done       chan struct{} // closed when the context's err is set
	timer      clock.Timer   // armed until the deadline
	stopParent func() bool   // registered with the parent
}

// attemptEnv is what every attempt of a coordinator shares: the context
// that abandons them all, and the clock they end by.
type attemptEnv struct {
	parent context.Context
	clock  clock.Clock
}

var _ context.Context = (*attemptCtx)(nil)

func (a *attemptCtx) Deadline() (time.Time, bool) { return a.deadline, true }

func (a *attemptCtx) Value(key any) any {
	if key == (stepContextKey{}) {
		return &a.step
	}
	return a.env.parent.Value(key)
}

func (a *attemptCtx) Err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.check()
	return a.err
}

func (a *attemptCtx) Done() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.wait != nil {
		return a.wait.done
	}
	w := &attemptWait{done: make(chan struct{})}
	a.wait = w
	if a.check(); a.err != nil {
		close(w.done)
		return w.done
	}
	w.timer = clock.AfterFuncAt(a.env.clock, a.deadline, func() { a.end(context.DeadlineExceeded) })
	w.stopParent = context.AfterFunc(a.env.parent, func() { a.end(a.env.parent.Err()) })
	return w.done
}

// check ends the context if its parent has ended or its deadline has
// passed. It expects a.mu held.
func (a *attemptCtx) check() {
	if a.err != nil {
		return
	}
	if err := a.env.parent.Err(); err != nil {
		a.endLocked(err)
	} else if !a.env.clock.Now().Before(a.deadline) {
		a.endLocked(context.DeadlineExceeded)
	}
}

// end ends the context with err, unless it has ended already.
func (a *attemptCtx) end(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.endLocked(err)
}

func (a *attemptCtx) endLocked(err error) {
	if a.err != nil {
		return
	}
	a.err = err
	w := a.wait
	if w == nil {
		return
	}
	close(w.done)
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	if w.stopParent != nil {
		w.stopParent()
		w.stopParent = nil
	}
}

// release ends the context once its attempt has returned.
func (a *attemptCtx) release() { a.end(context.Canceled) }
