package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/orderflow"
	"github.com/sagaflow/sagaflow/saga"
)

// Server-Sent Events. An order's stream (/orders/{id}/stream) sends each
// of its events as a message whose id is the event's seq, then an "end"
// event when the order settles, and closes. A client that connects late
// gets the events it missed first; one that reconnects with Last-Event-ID
// (as EventSource does) gets only those after it. The feed
// (/orders/feed) sends an "orders" event with the recent orders, then an
// "order" event with an order's status whenever it changes.

// endEvent is the data of a stream's "end" event: how the order settled.
type endEvent struct {
	OrderID string           `json:"order_id"`
	Status  orderflow.Status `json:"status"`
	// Stuck is set when a compensation gave up: the order stays
	// compensating until an operator retries it.
	Stuck bool `json:"stuck,omitempty"`
}

// orderStream is GET /orders/{id}/stream.
func (s *server) orderStream(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	correlate(r, id)
	var after uint64
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, r, http.StatusBadRequest, "Last-Event-ID "+strconv.Quote(v)+": want an event's seq")
			return
		}
		after = n
	}
	ctx, cancel, ok := s.streamContext(w, r)
	if !ok {
		return
	}
	defer cancel()
	watch, err := s.sys.Subscribe(ctx, id)
	if err != nil {
		s.lookupFailed(w, r, id, err)
		return
	}
	defer watch.Close()

	sw := s.startStream(w)
	if r.Method == http.MethodHead {
		return
	}
	heartbeat := s.cfg.Clock.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	var last *orderflow.OrderEvent
	for {
		select {
		case e, ok := <-watch.Events():
			if !ok { // the order settled, or the server or the System is stopping
				if end, ok := settled(last); ok {
					_ = sw.event("end", "", end)
				}
				return
			}
			last = &e
			if e.Seq <= after {
				continue
			}
			if sw.event("", strconv.FormatUint(e.Seq, 10), e) != nil {
				return
			}
		case <-heartbeat.C():
			if sw.comment("heartbeat") != nil {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// settled returns the end of an order whose last event is e, and whether e
// settles it: the order completed, was canceled, or a compensation gave
// up.
func settled(e *orderflow.OrderEvent) (endEvent, bool) {
	switch {
	case e == nil:
		return endEvent{}, false
	case e.Type == orderflow.EventOrderCompleted:
		return endEvent{OrderID: e.OrderID, Status: orderflow.StatusCompleted}, true
	case e.Type == orderflow.EventOrderCanceled:
		return endEvent{OrderID: e.OrderID, Status: orderflow.StatusFailed}, true
	case e.Compensation && !e.Success:
		return endEvent{OrderID: e.OrderID, Status: orderflow.StatusCompensating, Stuck: true}, true
	}
	return endEvent{}, false
}

// orderFeed is GET /orders/feed.
func (s *server) orderFeed(w http.ResponseWriter, r *http.Request) {
	ctx, cancel, ok := s.streamContext(w, r)
	if !ok {
		return
	}
	defer cancel()
	// Subscribe before reading the statuses, so that no change falls
	// between.
	sub := s.sys.Coordinator().Subscribe(saga.SubscribeOptions{Buffer: 256})
	defer sub.Close()
	var batch []saga.Event
	select { // a System that has stopped has closed the subscription already
	case e, ok := <-sub.Events():
		if !ok {
			w.Header().Set("Retry-After", "5")
			writeError(w, r, http.StatusServiceUnavailable, "the order system is not running")
			return
		}
		batch = append(batch, e)
	default:
	}

	sw := s.startStream(w)
	if r.Method == http.MethodHead {
		return
	}
	if sw.event("orders", "", struct {
		Orders []orderflow.OrderStatus `json:"orders"`
	}{s.statuses(ctx, s.recent.list())}) != nil {
		return
	}
	heartbeat := s.cfg.Clock.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	var missed uint64
	for ; ; batch = batch[:0] {
		if len(batch) == 0 {
			select {
			case e, ok := <-sub.Events():
				if !ok {
					return
				}
				batch = append(batch, e)
			case <-heartbeat.C():
				if sw.comment("heartbeat") != nil {
					return
				}
				continue
			case <-ctx.Done():
				return
			}
		}
	drain: // take what else is ready: one status per order, however many events it had
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
		m := sub.Missed()
		changed := changedOrders(batch, m != missed, s.recent.list())
		missed = m
		for _, st := range s.statuses(ctx, changed) {
			if sw.event("order", "", st) != nil {
				return
			}
		}
	}
}

// changedOrders returns the orders whose status the feed sends after a
// batch of events: each order the batch is about, once, in order of
// appearance; and when events were dropped (missedSome), whatever they
// were about is unknown, so every recent order too.
func changedOrders(batch []saga.Event, missedSome bool, recent []string) []string {
	var ids []string
	add := func(id string) {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	for i := range batch {
		add(batch[i].SagaID)
	}
	if missedSome {
		for _, id := range recent {
			add(id)
		}
	}
	return ids
}

// statuses returns the status of each order that can be read, in reverse
// order of ids (newest first for the recent list); an order forgotten
// since (past its retention) is left out.
func (s *server) statuses(ctx context.Context, ids []string) []orderflow.OrderStatus {
	out := make([]orderflow.OrderStatus, 0, len(ids))
	for i := len(ids) - 1; i >= 0; i-- {
		if st, err := s.sys.GetStatus(ctx, ids[i]); err == nil {
			out = append(out, st)
		}
	}
	return out
}

// streamContext returns the context of a stream: it ends with the request
// and when the server closes. Once the server has closed, it answers 503
// instead and returns false.
func (s *server) streamContext(w http.ResponseWriter, r *http.Request) (context.Context, context.CancelFunc, bool) {
	if s.ctx.Err() != nil {
		w.Header().Set("Retry-After", "5")
		writeError(w, r, http.StatusServiceUnavailable, "the server is shutting down")
		return nil, nil, false
	}
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
	}, true
}

// sseWriter writes Server-Sent Events, flushing each one. After a failed
// write it writes nothing more.
type sseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	err     error
}

// startStream answers 200 with an event stream. A stream lasts as long as
// its subject, so the deadline that the server's WriteTimeout sets for the
// whole response would cut it short: each write gets its own deadline
// instead. (net/http lifts the read deadline itself once the request has
// been read.)
func (s *server) startStream(w http.ResponseWriter) *sseWriter {
	sw := &sseWriter{w: w, rc: http.NewResponseController(w), timeout: s.cfg.StreamWriteTimeout}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // tell proxies not to buffer it
	w.WriteHeader(http.StatusOK)
	_ = sw.write([]byte("retry: 2000\n\n")) // reconnect after 2s; sends the headers now
	return sw
}

// event writes an event with an optional name and id, its data as JSON.
func (sw *sseWriter) event(name, id string, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if id != "" {
		buf.WriteString("id: " + id + "\n")
	}
	if name != "" {
		buf.WriteString("event: " + name + "\n")
	}
	buf.WriteString("data: ")
	buf.Write(b) // JSON from encoding/json holds no newline
	buf.WriteString("\n\n")
	return sw.write(buf.Bytes())
}

// comment writes a comment line, which clients ignore.
func (sw *sseWriter) comment(text string) error {
	return sw.write([]byte(": " + text + "\n\n"))
}

func (sw *sseWriter) write(b []byte) error {
	if sw.err != nil {
		return sw.err
	}
	// The network keeps real time, whatever clock the server runs on.
	err := sw.rc.SetWriteDeadline(clock.Real().Now().Add(sw.timeout))
	if err == nil || errors.Is(err, http.ErrNotSupported) {
		if _, err = sw.w.Write(b); err == nil {
			err = sw.rc.Flush()
		}
	}
	sw.err = err
	return err
}
