package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/orderflow"
	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/sagatest"
)

// start is the fake clocks' time: every timestamp the tests see.
var start = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// fixture is a server over a started System on a fake clock, with the
// bundled services, torn down when the test ends.
type fixture struct {
	t         *testing.T
	sys       *orderflow.System
	srv       *server
	clock     *clock.Fake // the engine's
	srvClock  *clock.Fake // the server's: request durations, heartbeats
	payment   *orderflow.PaymentService
	inventory *orderflow.InventoryService
	shipping  *orderflow.ShippingService
	logs      *watcher // the server's and the engine's logs, without times
}

// setup builds the fixture; mod may change the System's config before New.
func setup(t *testing.T, mod ...func(*orderflow.Config)) *fixture {
	t.Helper()
	clk := clock.NewFake(start)
	f := &fixture{
		t:         t,
		clock:     clk,
		srvClock:  clock.NewFake(start),
		payment:   orderflow.NewPaymentService(orderflow.PaymentConfig{Clock: clk}),
		inventory: orderflow.NewInventoryService(orderflow.InventoryConfig{Clock: clk}),
		shipping:  orderflow.NewShippingService(orderflow.ShippingConfig{Clock: clk}),
		logs:      newWatcher(),
	}
	logger := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	cfg := orderflow.Config{
		Engine:    saga.Config{Clock: clk, Logger: logger, Rand: func() float64 { return 0.5 }},
		Payment:   f.payment,
		Inventory: f.inventory,
		Shipping:  f.shipping,
	}
	for _, m := range mod {
		m(&cfg)
	}
	sys, err := orderflow.New(cfg)
	require.NoError(t, err)
	require.NoError(t, sys.Startup(context.Background()))
	f.sys = sys
	f.srv = newServer(sys, serverConfig{Logger: logger, Clock: f.srvClock})
	t.Cleanup(func() {
		f.srv.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // abandon what is still running: the test is over
		_ = sys.Shutdown(ctx)
	})
	return f
}

// orderJSON is a valid request body: Ada buys one laptop at 999.99.
const orderJSON = `{
	"customer_data": {"name": "Ada Lovelace", "email": "ada@example.com", "address": "12 St James's Square, London"},
	"items": [{"name": "laptop", "price": 999.99, "quantity": 1}]
}`

// do sends a request to the server's handler and returns the response;
// header is pairs of names and values.
func (f *fixture) do(method, target, body string, header ...string) *httptest.ResponseRecorder {
	f.t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	f.srv.ServeHTTP(w, r)
	return w
}

// place posts body and returns the new order's ID, failing the test unless
// it is accepted.
func (f *fixture) place(target, body string, header ...string) string {
	f.t.Helper()
	w := f.do(http.MethodPost, target, body, header...)
	require.Equal(f.t, http.StatusAccepted, w.Code, w.Body.String())
	var receipt orderflow.Receipt
	require.NoError(f.t, json.Unmarshal(w.Body.Bytes(), &receipt))
	require.True(f.t, receipt.Success)
	return receipt.OrderID
}

// wait waits until the order has settled and returns its status.
func (f *fixture) wait(id string) orderflow.OrderStatus {
	f.t.Helper()
	sagatest.WaitStatus(f.t, f.sys.Coordinator(), id, saga.StatusCompleted, saga.StatusCompensated, saga.StatusStuck)
	st, err := f.sys.GetStatus(context.Background(), id)
	require.NoError(f.t, err)
	return st
}

// fireRetries moves the engine's clock to each retry the order schedules,
// until the order has settled.
func (f *fixture) fireRetries(id string) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sagatest.WaitTimeout)
	defer cancel()
	sub := f.sys.Coordinator().Subscribe(saga.SubscribeOptions{SagaID: id, Buffer: 1024})
	defer sub.Close()
	var fired uint64
	for {
		snap, err := f.sys.Coordinator().Get(ctx, id)
		require.NoError(f.t, err)
		if snap.Status.Settled() {
			return
		}
		events, err := f.sys.Coordinator().Events(ctx, id)
		require.NoError(f.t, err)
		for _, e := range events {
			if e.Type == saga.EventRetryScheduled && e.Seq > fired {
				fired = e.Seq
				f.clock.Advance(e.At.Sub(f.clock.Now()))
			}
		}
		select {
		case <-sub.Events(): // something happened: look again
		case <-ctx.Done():
			f.t.Fatalf("order %s did not settle: %v", id, ctx.Err())
		}
	}
}

// jsonOf decodes a JSON body, failing the test if it is not JSON.
func jsonOf(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(body, &v), "body: %s", body)
	return v
}

// gate holds every charge until it is opened, and reports each order
// that reaches it: a way to catch an order in flight without a clock.
type gate struct {
	*orderflow.PaymentService
	reached chan string
	open    chan struct{}
	once    sync.Once
}

func newGate(p *orderflow.PaymentService) *gate {
	return &gate{PaymentService: p, reached: make(chan string, 100), open: make(chan struct{})}
}

// Charge waits for the gate to open, then charges.
func (g *gate) Charge(ctx context.Context, req orderflow.ChargeRequest) (string, error) {
	select {
	case g.reached <- req.OrderID:
	default:
	}
	select {
	case <-g.open:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return g.PaymentService.Charge(ctx, req)
}

// release opens the gate for good.
func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

// waitReached waits until order id is at the gate.
func (g *gate) waitReached(t *testing.T, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sagatest.WaitTimeout)
	defer cancel()
	for {
		select {
		case got := <-g.reached:
			if got == id {
				return
			}
		case <-ctx.Done():
			t.Fatalf("order %s never reached the payment gate", id)
		}
	}
}

// gated sets up a fixture whose payments wait at a gate, opened when the
// test ends at the latest.
func gated(t *testing.T, mod ...func(*orderflow.Config)) (*fixture, *gate) {
	t.Helper()
	var g *gate
	f := setup(t, append([]func(*orderflow.Config){func(c *orderflow.Config) {
		g = newGate(c.Payment.(*orderflow.PaymentService))
		c.Payment = g
	}}, mod...)...)
	t.Cleanup(g.release) // runs before the fixture's cleanup
	return f, g
}
