package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/orderflow"
	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/sagatest"
)

// frame is one Server-Sent Events frame: the lines up to a blank one.
type frame struct {
	ID, Event, Data, Retry, Comment string
}

// stream reads frames from an event stream.
type stream struct {
	t    *testing.T
	resp *http.Response
	sc   *bufio.Scanner

	// skipHeartbeats makes next pass over heartbeat frames, for a stream
	// whose heartbeats come on the real clock between any two frames.
	skipHeartbeats bool
}

// serveTest serves h for the test; the streams a test opens are closed before
// the server, which waits for them.
func serveTest(t *testing.T, h http.Handler) *httptest.Server {
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts
}

// openStream GETs an event stream from ts, requiring a 200 answer.
func openStream(t *testing.T, ts *httptest.Server, path string, header ...string) *stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sagatest.WaitTimeout)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+path, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := ts.Client().Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	assert.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))
	s := &stream{t: t, resp: resp, sc: bufio.NewScanner(resp.Body)}
	s.sc.Buffer(nil, 1<<20)
	assert.Equal(t, frame{Retry: "2000"}, s.next(), "the stream starts with its reconnection delay")
	return s
}

// next reads the next frame; at the end of the stream it returns the zero
// frame and fails the test unless the stream ended cleanly.
func (s *stream) next() frame {
	s.t.Helper()
	var f frame
	seen := false
	for s.sc.Scan() {
		line := s.sc.Text()
		if line == "" {
			if seen && !(s.skipHeartbeats && f == frame{Comment: "heartbeat"}) {
				return f
			}
			f, seen = frame{}, false
			continue
		}
		seen = true
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			f.ID = value
		case "event":
			f.Event = value
		case "data":
			f.Data = value
		case "retry":
			f.Retry = value
		case "":
			f.Comment = value
		default:
			s.t.Errorf("unknown field in event stream: %q", line)
		}
	}
	require.NoError(s.t, s.sc.Err())
	require.False(s.t, seen, "the stream ended inside a frame")
	return frame{}
}

// event reads the next frame, which must be an order event, and returns it.
func (s *stream) event() orderflow.OrderEvent {
	s.t.Helper()
	f := s.next()
	require.Empty(s.t, f.Event, "an order event is a plain message: %+v", f)
	var e orderflow.OrderEvent
	require.NoError(s.t, json.Unmarshal([]byte(f.Data), &e), "frame %+v", f)
	assert.Equal(s.t, strconv.FormatUint(e.Seq, 10), f.ID, "the frame's id is the event's seq")
	return e
}

// events reads n order events and returns their types; failed steps get a
// "!" suffix, compensations a "↩" prefix.
func (s *stream) events(n int) []string {
	s.t.Helper()
	var out []string
	for range n {
		e := s.event()
		typ := string(e.Type)
		if e.Compensation {
			typ = "↩" + typ
		}
		if !e.Success {
			typ += "!"
		}
		out = append(out, typ)
	}
	return out
}

// end reads the end frame and then the end of the stream.
func (s *stream) end(data string) {
	s.t.Helper()
	f := s.next()
	assert.Equal(s.t, "end", f.Event, "frame %+v", f)
	assert.JSONEq(s.t, data, f.Data)
	s.closed()
}

// closed requires the stream to end here.
func (s *stream) closed() {
	s.t.Helper()
	assert.Equal(s.t, frame{}, s.next(), "the stream goes on")
}

func TestStreamLateClientGetsWhatItMissed(t *testing.T) {
	t.Parallel()
	f, g := gated(t)
	ts := serveTest(t, f.srv)

	id := f.place("/process_order", orderJSON)
	g.waitReached(t, id) // created and validated, now waiting at payment
	s := openStream(t, ts, "/orders/"+id+"/stream")
	first := s.event()
	assert.Equal(t, orderflow.OrderEvent{
		OrderID: id, Seq: 1, Type: orderflow.EventOrderCreated, Timestamp: start, Service: orderflow.ServiceOrder,
		Success: true, Processed: true,
		Data: map[string]any{"customer": "Ada Lovelace", "items": 1.0, "total_amount": 999.99},
	}, first)
	assert.Equal(t, []string{"ORDER_VALIDATED"}, s.events(1), "missed before connecting")

	g.release()
	assert.Equal(t, []string{"PAYMENT_PROCESSED", "INVENTORY_RESERVED", "ORDER_SHIPPED", "ORDER_COMPLETED"}, s.events(4), "live")
	s.end(`{"order_id": "` + id + `", "status": "completed"}`)
}

func TestStreamOfEndedOrder(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ts := serveTest(t, f.srv)

	id := f.place("/process_order", orderJSON)
	f.wait(id)
	s := openStream(t, ts, "/orders/"+id+"/stream")
	assert.Equal(t, []string{"ORDER_CREATED", "ORDER_VALIDATED", "PAYMENT_PROCESSED", "INVENTORY_RESERVED", "ORDER_SHIPPED", "ORDER_COMPLETED"}, s.events(6))
	s.end(`{"order_id": "` + id + `", "status": "completed"}`)

	failed := f.place("/process_order?fail_step=inventory", orderJSON)
	f.wait(failed)
	s = openStream(t, ts, "/orders/"+failed+"/stream")
	assert.Equal(t, []string{"ORDER_CREATED", "ORDER_VALIDATED", "PAYMENT_PROCESSED", "INVENTORY_RESERVED!",
		"↩PAYMENT_REFUNDED", "↩ORDER_CANCELED"}, s.events(6))
	s.end(`{"order_id": "` + failed + `", "status": "failed"}`)
}

func TestStreamOfFailingOrder(t *testing.T) {
	t.Parallel()
	f, g := gated(t)
	ts := serveTest(t, f.srv)

	id := f.place("/process_order?fail_step=shipping&fail_mode=unavailable", orderJSON)
	g.waitReached(t, id)
	s := openStream(t, ts, "/orders/"+id+"/stream")
	assert.Equal(t, []string{"ORDER_CREATED", "ORDER_VALIDATED"}, s.events(2))
	g.release()
	f.fireRetries(id)
	assert.Equal(t, []string{"PAYMENT_PROCESSED", "INVENTORY_RESERVED", "ORDER_SHIPPED!",
		"↩SHIPMENT_CANCELED", "↩INVENTORY_RELEASED", "↩PAYMENT_REFUNDED", "↩ORDER_CANCELED"}, s.events(7))
	s.end(`{"order_id": "` + id + `", "status": "failed"}`)
}

func TestStreamResumesAfterLastEventID(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ts := serveTest(t, f.srv)
	id := f.place("/process_order", orderJSON)
	f.wait(id)

	s := openStream(t, ts, "/orders/"+id+"/stream", "Last-Event-ID", "5")
	assert.Equal(t, []string{"INVENTORY_RESERVED", "ORDER_SHIPPED", "ORDER_COMPLETED"}, s.events(3))
	s.end(`{"order_id": "` + id + `", "status": "completed"}`)

	s = openStream(t, ts, "/orders/"+id+"/stream", "Last-Event-ID", "10")
	s.end(`{"order_id": "` + id + `", "status": "completed"}`)

	w := f.do(http.MethodGet, "/orders/"+id+"/stream", "", "Last-Event-ID", "five")
	assert.Equal(t, http.StatusBadRequest, w.Code)
	assert.JSONEq(t, `{"success": false, "error": "Last-Event-ID \"five\": want an event's seq"}`, w.Body.String())
}

func TestStreamHeartbeat(t *testing.T) {
	t.Parallel()
	f, g := gated(t)
	ts := serveTest(t, f.srv)

	id := f.place("/process_order", orderJSON)
	g.waitReached(t, id)
	s := openStream(t, ts, "/orders/"+id+"/stream")
	assert.Equal(t, []string{"ORDER_CREATED", "ORDER_VALIDATED"}, s.events(2))
	ctx, cancel := context.WithTimeout(context.Background(), sagatest.WaitTimeout)
	defer cancel()
	require.NoError(t, f.srvClock.BlockUntil(ctx, 1)) // the stream's ticker
	f.srvClock.Advance(15 * time.Second)
	assert.Equal(t, frame{Comment: "heartbeat"}, s.next())

	g.release()
	assert.Equal(t, []string{"PAYMENT_PROCESSED", "INVENTORY_RESERVED", "ORDER_SHIPPED", "ORDER_COMPLETED"}, s.events(4))
	s.end(`{"order_id": "` + id + `", "status": "completed"}`)
}

func TestStreamOutlivesServerTimeouts(t *testing.T) {
	t.Parallel()
	f, g := gated(t)
	// A server whose read and write timeouts are far shorter than the
	// stream, with a heartbeat on the real clock to write now and then.
	srv := newServer(f.sys, serverConfig{Clock: clock.Real(), Heartbeat: 10 * time.Millisecond})
	defer srv.Close()
	ts := httptest.NewUnstartedServer(srv)
	ts.Config.ReadTimeout = 50 * time.Millisecond
	ts.Config.WriteTimeout = 50 * time.Millisecond
	ts.Start()
	t.Cleanup(ts.Close) // after the streams' own cleanups

	id := f.place("/process_order", orderJSON)
	g.waitReached(t, id)
	s := openStream(t, ts, "/orders/"+id+"/stream")
	assert.Equal(t, []string{"ORDER_CREATED", "ORDER_VALIDATED"}, s.events(2))
	for range 20 { // at least 200ms: four times the timeouts
		assert.Equal(t, frame{Comment: "heartbeat"}, s.next())
	}
	s.skipHeartbeats = true
	g.release()
	assert.Equal(t, []string{"PAYMENT_PROCESSED", "INVENTORY_RESERVED", "ORDER_SHIPPED", "ORDER_COMPLETED"}, s.events(4))
	s.end(`{"order_id": "` + id + `", "status": "completed"}`)
}

func TestStreamEndsWhenServerCloses(t *testing.T) {
	t.Parallel()
	f, g := gated(t)
	ts := serveTest(t, f.srv)

	id := f.place("/process_order", orderJSON)
	g.waitReached(t, id)
	s := openStream(t, ts, "/orders/"+id+"/stream")
	feed := openStream(t, ts, "/orders/feed")
	assert.Equal(t, "orders", feed.next().Event)
	assert.Equal(t, []string{"ORDER_CREATED", "ORDER_VALIDATED"}, s.events(2))

	f.srv.closeStreams()
	s.closed() // without an end event: the order has not ended
	feed.closed()

	for _, path := range []string{"/orders/" + id + "/stream", "/orders/feed"} {
		w := f.do(http.MethodGet, path, "")
		assert.Equal(t, http.StatusServiceUnavailable, w.Code)
		assert.JSONEq(t, `{"success": false, "error": "the server is shutting down"}`, w.Body.String())
	}
}

func TestStreamEndsWhenSystemShutsDown(t *testing.T) {
	t.Parallel()
	f, g := gated(t)
	ts := serveTest(t, f.srv)

	id := f.place("/process_order", orderJSON)
	g.waitReached(t, id)
	s := openStream(t, ts, "/orders/"+id+"/stream")
	feed := openStream(t, ts, "/orders/feed")
	assert.Equal(t, "orders", feed.next().Event)
	assert.Equal(t, []string{"ORDER_CREATED", "ORDER_VALIDATED"}, s.events(2))

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // abandon the order at the gate
	err := f.sys.Shutdown(ctx)
	var unfinished *saga.UnfinishedError
	require.ErrorAs(t, err, &unfinished)
	assert.Equal(t, []string{id}, unfinished.IDs)
	s.closed()
	feed.closed()
}

func TestFeed(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ts := serveTest(t, f.srv)

	feed := openStream(t, ts, "/orders/feed")
	assert.Equal(t, frame{Event: "orders", Data: `{"orders":[]}`}, feed.next())

	id := f.place("/process_order", orderJSON)
	var statuses []string
	for len(statuses) == 0 || statuses[len(statuses)-1] != "completed" {
		fr := feed.next()
		require.Equal(t, "order", fr.Event, "frame %+v", fr)
		var st orderflow.OrderStatus
		require.NoError(t, json.Unmarshal([]byte(fr.Data), &st))
		require.Equal(t, id, st.OrderID)
		if len(statuses) == 0 || statuses[len(statuses)-1] != st.Status.String() {
			statuses = append(statuses, st.Status.String())
		}
	}
	// However the events were batched, the statuses come in order.
	all := []string{"pending", "validated", "payment_processed", "inventory_reserved", "shipped", "completed"}
	last := -1
	for _, st := range statuses {
		i := indexOf(all, st)
		assert.Greater(t, i, last, "statuses out of order: %v", statuses)
		last = i
	}

	failed := f.place("/process_order?fail_step=payment", orderJSON)
	f.wait(failed)
	// A client that connects now gets the list, newest first.
	late := openStream(t, ts, "/orders/feed")
	fr := late.next()
	assert.Equal(t, "orders", fr.Event)
	var list struct {
		Orders []orderflow.OrderStatus `json:"orders"`
	}
	require.NoError(t, json.Unmarshal([]byte(fr.Data), &list))
	require.Len(t, list.Orders, 2)
	assert.Equal(t, failed, list.Orders[0].OrderID)
	assert.Equal(t, orderflow.StatusFailed, list.Orders[0].Status)
	assert.Equal(t, "card declined (injected fault)", list.Orders[0].Error)
	assert.Equal(t, id, list.Orders[1].OrderID)
	assert.Equal(t, orderflow.StatusCompleted, list.Orders[1].Status)
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

func TestChangedOrders(t *testing.T) {
	t.Parallel()
	ev := func(ids ...string) []saga.Event {
		var out []saga.Event
		for _, id := range ids {
			out = append(out, saga.Event{SagaID: id})
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		batch  []saga.Event
		missed bool
		recent []string
		want   []string
	}{
		{"one event", ev("a"), false, []string{"x"}, []string{"a"}},
		{"one order per batch", ev("a", "b", "a", "a", "c", "b"), false, nil, []string{"a", "b", "c"}},
		{"missed events add the recent orders", ev("a", "b"), true, []string{"x", "b", "y"}, []string{"a", "b", "x", "y"}},
		{"missed, nothing recent", ev("a"), true, nil, []string{"a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, changedOrders(tc.batch, tc.missed, tc.recent))
		})
	}
}

func TestStreamStopsAtFirstFailedWrite(t *testing.T) {
	t.Parallel()
	// A writer that fails stops writing: a client that stopped reading is
	// dropped at its first failed write, and nothing more is attempted.
	w := &failingWriter{ResponseRecorder: httptest.NewRecorder()}
	sw := (&server{cfg: serverConfig{}.withDefaults()}).startStream(w)
	require.ErrorIs(t, sw.err, errBrokenPipe)
	assert.ErrorIs(t, sw.event("", "1", map[string]int{"a": 1}), errBrokenPipe)
	assert.ErrorIs(t, sw.comment("heartbeat"), errBrokenPipe)
	assert.Equal(t, 1, w.writes, "no write after the first failure")
}

var errBrokenPipe = errors.New("broken pipe")

type failingWriter struct {
	*httptest.ResponseRecorder
	writes int
}

func (w *failingWriter) Write([]byte) (int, error) {
	w.writes++
	return 0, errBrokenPipe
}

var _ io.Writer = (*failingWriter)(nil)

func TestStreamHead(t *testing.T) {
	t.Parallel()
	f, _ := gated(t)
	ts := serveTest(t, f.srv)
	id := f.place("/process_order", orderJSON) // held at payment: a GET would not end

	for _, path := range []string{"/orders/" + id + "/stream", "/orders/feed"} {
		resp, err := ts.Client().Head(ts.URL + path)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, path)
		assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"), path)
	}
	resp, err := ts.Client().Head(ts.URL + "/orders/nope/stream")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}
