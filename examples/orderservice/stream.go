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
	ctx, cancel := s.streamContext(r)
	defer cancel()
	watch, err := s.sys.Subscribe(ctx, id)
	if err != nil {
		s.lookupFailed(w, r, id, err)
		return
	}
	defer watch.Close()

	sw := s.startStream(w)
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
	ctx, cancel := s.streamContext(r)
	defer cancel()
	// Subscribe before reading the statuses, so that no change falls
	// between.
	sub := s.sys.Coordinator().Subscribe(saga.SubscribeOptions{Buffer: 256})
	defer sub.Close()

	sw := s.startStream(w)
	if sw.event("orders", "", struct {
		Orders []orderflow.OrderStatus `json:"orders"`
	}{s.statuses(ctx, s.recent.list())}) != nil {
		return
	}
	heartbeat := s.cfg.Clock.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	var missed uint64
	var changed []string
	for {
		changed = changed[:0]
		select {
		case e, ok := <-sub.Events():
			if !ok {
				return
			}
			changed = append(changed, e.SagaID)
		case <-heartbeat.C():
			if sw.comment("heartbeat") != nil {
				return
			}
			continue
		case <-ctx.Done():
			return
		}
	drain: // one status for each order, however many events it had
		for {
			select {
			case e, ok := <-sub.Events():
				if !ok {
					break drain
				}
				if !slices.Contains(changed, e.SagaID) {
					changed = append(changed, e.SagaID)
				}
			default:
				break drain
			}
		}
		if m := sub.Missed(); m != missed {
			// Events were dropped: the orders they were about are unknown,
			// so send every recent one again.
			missed = m
			for _, id := range s.recent.list() {
				if !slices.Contains(changed, id) {
					changed = append(changed, id)
				}
			}
		}
		for _, st := range s.statuses(ctx, changed) {
			if sw.event("order", "", st) != nil {
				return
			}
		}
	}
}

// statuses returns the status of each order that can be read, newest
// first; an order forgotten since (past its retention) is left out.
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
// and when the server closes.
func (s *server) streamContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
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
// its subject, so it has no read deadline (the server's ReadTimeout would
// end its context) and no deadline for the whole response (WriteTimeout):
// each write gets its own deadline instead.
func (s *server) startStream(w http.ResponseWriter) *sseWriter {
	sw := &sseWriter{w: w, rc: http.NewResponseController(w), timeout: s.cfg.StreamWriteTimeout}
	if err := sw.rc.SetReadDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		sw.err = err
	}
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
