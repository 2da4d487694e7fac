package orderflow

import (
	"context"
	"sync"

	"github.com/sagaflow/sagaflow/saga"
)

// Watch is a live stream of one order's events, from Subscribe.
type Watch struct {
	ch     chan OrderEvent
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Events returns the stream. It is closed after the event that settles the
// order (ORDER_COMPLETED, ORDER_CANCELED, or a compensation that gave up,
// leaving the order stuck until Retry), when the Watch is closed, when its
// context ends, or when the System shuts down.
func (w *Watch) Events() <-chan OrderEvent { return w.ch }

// Close stops the stream and waits for its goroutine to end. It is safe to
// call more than once, and from any goroutine.
func (w *Watch) Close() {
	w.once.Do(w.cancel)
	<-w.done
}

// Subscribe streams the order's events: first those already recorded, then
// each new one as the engine records it, with none missed or repeated even
// if the reader falls behind (the gap is read back from the store). An
// event's Processed flag is as of when it was sent. Subscribe returns an
// error wrapping ErrNotFound if the order does not exist. Close the Watch,
// or end ctx, when done.
func (s *System) Subscribe(ctx context.Context, orderID string) (*Watch, error) {
	// Subscribe before reading the log, so that nothing falls between.
	sub := s.coord.Subscribe(saga.SubscribeOptions{SagaID: orderID, Buffer: 64})
	log, err := s.coord.Events(ctx, orderID)
	if err != nil {
		sub.Close()
		return nil, s.notFound(orderID, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &Watch{ch: make(chan OrderEvent), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer close(w.ch)
		defer sub.Close()
		s.stream(ctx, orderID, log, sub, w.ch)
	}()
	return w, nil
}

// stream sends the events of log and then those of sub, until the order
// ends or ctx does.
func (s *System) stream(ctx context.Context, orderID string, log []saga.Event, sub *saga.Subscription, out chan<- OrderEvent) {
	var m mapper
	var last uint64
	send := func(batch []saga.Event) bool {
		for i := range batch {
			e := &batch[i]
			if e.Seq <= last {
				continue
			}
			last = e.Seq
			oe, ok := m.next(e, i+1 < len(batch))
			if ok {
				select {
				case out <- oe:
				case <-ctx.Done():
					return false
				}
			}
			// A stuck order may have been retried since: only the newest
			// event settles it.
			if e.Ends() || (ok && oe.settles() && i+1 == len(batch)) {
				return false
			}
		}
		return true
	}
	if !send(log) {
		return
	}
	var batch []saga.Event
	var missed uint64
	for {
		select {
		case e, ok := <-sub.Events():
			if !ok {
				return
			}
			batch = append(batch[:0], e)
		case <-ctx.Done():
			return
		}
	drain: // take what else is ready, to know which events were acted on
		for {
			select {
			case e, ok := <-sub.Events():
				if !ok {
					break drain
				}
				batch = append(batch, e)
			default:
				break drain
			}
		}
		// Once the buffer is drained, any event the subscription dropped
		// has been counted: read what was dropped back from the log.
		if m := sub.Missed(); m != missed {
			missed = m
			log, err := s.coord.Events(ctx, orderID)
			if err != nil {
				return
			}
			batch = append(batch[:0], log...)
		}
		if !send(batch) {
			return
		}
	}
}
