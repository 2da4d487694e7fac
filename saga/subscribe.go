package saga

import (
	"slices"
	"sync"
	"sync/atomic"
)

// Subscription receives events as the coordinator appends them: each
// instance's events in log order, after they are stored. A subscriber that
// does not keep up never slows the engine down: events that find its buffer
// full are dropped and counted in Missed, and the full log can always be
// read back with Coordinator.Events.
type Subscription struct {
	hub    *hub
	sagaID string // only this instance's events, or all if empty
	ch     chan Event
	missed atomic.Uint64

	mu     sync.Mutex
	closed bool
}

// SubscribeOptions selects what a subscription receives.
type SubscribeOptions struct {
	// SagaID limits the subscription to one instance. Defaults to "": every
	// instance of the coordinator.
	SagaID string
	// Buffer is how many events may wait unread before new ones are
	// dropped. Defaults to 256.
	Buffer int
}

// Events returns the channel that delivers the events. It is closed by
// Close and when the coordinator shuts down.
func (s *Subscription) Events() <-chan Event { return s.ch }

// Missed returns how many events were dropped because the buffer was full.
func (s *Subscription) Missed() uint64 { return s.missed.Load() }

// Close ends the subscription and closes its channel. It is safe to call
// more than once and from any goroutine.
func (s *Subscription) Close() {
	s.hub.remove(s)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
}

func (s *Subscription) deliver(e *Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	select {
	case s.ch <- *e:
	default:
		s.missed.Add(1)
	}
}

// hub fans events out to subscriptions. Publishing costs one atomic load
// when nobody subscribes.
type hub struct {
	mu     sync.Mutex
	all    atomic.Pointer[[]*Subscription] // copy on write
	byID   map[string][]*Subscription
	nbyID  atomic.Int64
	closed bool
}

func (h *hub) add(s *Subscription) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	if s.sagaID == "" {
		var subs []*Subscription
		if p := h.all.Load(); p != nil {
			subs = slices.Clone(*p)
		}
		subs = append(subs, s)
		h.all.Store(&subs)
		return true
	}
	if h.byID == nil {
		h.byID = make(map[string][]*Subscription)
	}
	h.byID[s.sagaID] = append(h.byID[s.sagaID], s)
	h.nbyID.Add(1)
	return true
}

func (h *hub) remove(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.sagaID == "" {
		p := h.all.Load()
		if p == nil {
			return
		}
		if i := slices.Index(*p, s); i >= 0 {
			subs := slices.Delete(slices.Clone(*p), i, i+1)
			h.all.Store(&subs)
		}
		return
	}
	subs := h.byID[s.sagaID]
	if i := slices.Index(subs, s); i >= 0 {
		subs = slices.Delete(subs, i, i+1)
		h.nbyID.Add(-1)
		if len(subs) == 0 {
			delete(h.byID, s.sagaID)
		} else {
			h.byID[s.sagaID] = subs
		}
	}
}

func (h *hub) publish(e *Event) {
	if p := h.all.Load(); p != nil {
		for _, s := range *p {
			s.deliver(e)
		}
	}
	if h.nbyID.Load() == 0 {
		return
	}
	// deliver never blocks, so it may run under the lock (Close takes
	// h.mu and s.mu one after the other, never nested).
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.byID[e.SagaID] {
		s.deliver(e)
	}
}

// close ends every subscription; later subscriptions are closed at once.
func (h *hub) close() {
	h.mu.Lock()
	h.closed = true
	var subs []*Subscription
	if p := h.all.Load(); p != nil {
		subs = append(subs, *p...)
	}
	for _, l := range h.byID {
		subs = append(subs, l...)
	}
	h.mu.Unlock()
	for _, s := range subs {
		s.Close()
	}
}
