package orderflow

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sagaflow/sagaflow/clock"
)

// Fault is a misbehaviour injected into one of the bundled services, for
// tests and demonstrations. A call matches a fault when its operation and
// order match, and every matching fault applies: the call waits the sum of
// their Delays (on the service's clock), or until its context ends if one
// of them hangs, and then returns the Err of the first one injected that
// has one, or goes on normally if none has. Each matching fault with a
// Times count uses up one.
type Fault struct {
	// Op limits the fault to one operation: "charge", "refund", "reserve",
	// "release", "ship" or "cancel". Empty matches every operation.
	Op string
	// OrderID limits the fault to one order. Empty matches every order.
	OrderID string
	// Times is how many matching calls the fault affects before it goes
	// away; 0 means every call until it is removed.
	Times int
	// Delay is latency added to the call.
	Delay time.Duration
	// Hang blocks the call until its context ends; it then returns the
	// context's error.
	Hang bool
	// Err is returned by the call after Delay; nil lets the call proceed.
	Err error
}

// Faults holds the faults injected into a service. The bundled services
// embed it, so its methods are called on the service:
//
//	payment.FailNext(2, nil)      // the next two calls fail with ErrUnavailable
//	shipping.FailOrder(id, saga.Permanent(errors.New("no courier")))
//
// The methods are safe for concurrent use.
type Faults struct {
	clock  clock.Clock
	lock   sync.Mutex
	faults []*Fault
	n      atomic.Int32 // len(faults), read without the lock on every call
}

// Inject adds f and returns a function that removes it.
func (fs *Faults) Inject(f Fault) (remove func()) {
	p := &f
	fs.lock.Lock()
	fs.faults = append(fs.faults, p)
	fs.n.Store(int32(len(fs.faults)))
	fs.lock.Unlock()
	return func() {
		fs.lock.Lock()
		defer fs.lock.Unlock()
		fs.faults = slices.DeleteFunc(fs.faults, func(q *Fault) bool { return q == p })
		fs.n.Store(int32(len(fs.faults)))
	}
}

// FailAlways makes every call fail with err (ErrUnavailable if nil) until
// the fault is removed: the service is down.
func (fs *Faults) FailAlways(err error) (remove func()) {
	return fs.Inject(Fault{Err: orUnavailable(err)})
}

// FailNext makes the next n calls fail with err (ErrUnavailable if nil).
func (fs *Faults) FailNext(n int, err error) (remove func()) {
	if n <= 0 { // nothing to fail; a Fault with Times 0 would fail every call
		return func() {}
	}
	return fs.Inject(Fault{Times: n, Err: orUnavailable(err)})
}

// FailOrder makes every call for one order fail with err (ErrUnavailable if
// nil).
func (fs *Faults) FailOrder(orderID string, err error) (remove func()) {
	return fs.Inject(Fault{OrderID: orderID, Err: orUnavailable(err)})
}

// Delay adds d of latency to every call.
func (fs *Faults) Delay(d time.Duration) (remove func()) {
	return fs.Inject(Fault{Delay: d})
}

// Hang makes every call block until its context ends.
func (fs *Faults) Hang() (remove func()) {
	return fs.Inject(Fault{Hang: true})
}

// Clear removes every fault.
func (fs *Faults) Clear() {
	fs.lock.Lock()
	fs.faults = nil
	fs.n.Store(0)
	fs.lock.Unlock()
}

func orUnavailable(err error) error {
	if err == nil {
		return ErrUnavailable
	}
	return err
}

// fault runs the first fault matching a call, if any, and returns the error
// the call must return; nil lets it proceed.
func (fs *Faults) fault(ctx context.Context, op, orderID string) error {
	if fs.n.Load() == 0 {
		return nil
	}
	var delay time.Duration
	var hang bool
	var err error
	fs.lock.Lock()
	for i := 0; i < len(fs.faults); i++ {
		p := fs.faults[i]
		if (p.Op != "" && p.Op != op) || (p.OrderID != "" && p.OrderID != orderID) {
			continue
		}
		delay += p.Delay
		hang = hang || p.Hang
		if err == nil {
			err = p.Err
		}
		if p.Times > 0 {
			if p.Times--; p.Times == 0 {
				fs.faults = slices.Delete(fs.faults, i, i+1)
				fs.n.Store(int32(len(fs.faults)))
				i--
			}
		}
	}
	fs.lock.Unlock()
	if hang {
		<-ctx.Done()
		return ctx.Err()
	}
	if delay > 0 {
		if err := clock.Sleep(ctx, fs.clock, delay); err != nil {
			return err
		}
	}
	return err
}

// Ping reports the error of a fault that takes the whole service down (no
// operation, no order, no count), if one is injected. It consumes nothing.
func (fs *Faults) Ping(context.Context) error {
	fs.lock.Lock()
	defer fs.lock.Unlock()
	for _, p := range fs.faults {
		if p.Op == "" && p.OrderID == "" && p.Times == 0 && p.Err != nil {
			return p.Err
		}
	}
	return nil
}
