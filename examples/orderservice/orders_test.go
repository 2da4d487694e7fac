package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/orderflow"
	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/sagatest"
)

func TestProcessOrder(t *testing.T) {
	t.Parallel()
	f := setup(t)

	w := f.do(http.MethodPost, "/process_order", orderJSON)
	require.Equal(t, http.StatusAccepted, w.Code, w.Body.String())
	id, _ := jsonOf(t, w.Body.Bytes())["order_id"].(string)
	require.NoError(t, uuid.Validate(id), "a generated order ID")
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	assert.Equal(t, "/orders/"+id+"/status", w.Header().Get("Location"))
	assert.JSONEq(t, `{"success": true, "order_id": "`+id+`", "message": "order accepted", "timestamp": "2025-01-01T00:00:00Z"}`, w.Body.String())

	assert.Equal(t, orderflow.StatusCompleted, f.wait(id).Status)
	w = f.do(http.MethodGet, "/orders/"+id+"/status", "")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.JSONEq(t, fmt.Sprintf(`{"success": true, "order": {
		"order_id": %q, "status": "completed",
		"created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z",
		"total_amount": 999.99,
		"customer": {"name": "Ada Lovelace", "email": "ada@example.com", "address": "12 St James's Square, London"},
		"items": [{"name": "laptop", "price": 999.99, "quantity": 1}],
		"charge_id": "CH-000001", "reservation_id": "RSV-000001", "tracking_number": "TRK-000001"
	}}`, id), w.Body.String())

	w = f.do(http.MethodGet, "/orders/"+id+"/events", "")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	event := func(seq int, typ, service, data string) string {
		return fmt.Sprintf(`{"order_id": %q, "seq": %d, "event_type": %q, "timestamp": "2025-01-01T00:00:00Z",
			"service": %q, "success": true, "compensation": false, "processed": true, "data": %s}`, id, seq, typ, service, data)
	}
	assert.JSONEq(t, `{"success": true, "order_id": "`+id+`", "events": [`+strings.Join([]string{
		event(1, "ORDER_CREATED", "ORDER", `{"customer": "Ada Lovelace", "items": 1, "total_amount": 999.99}`),
		event(3, "ORDER_VALIDATED", "ORDER", `{"total_amount": 999.99}`),
		event(5, "PAYMENT_PROCESSED", "PAYMENT", `{"amount": 999.99, "charge_id": "CH-000001"}`),
		event(7, "INVENTORY_RESERVED", "INVENTORY", `{"items": 1, "reservation_id": "RSV-000001"}`),
		event(9, "ORDER_SHIPPED", "SHIPPING", `{"tracking_number": "TRK-000001"}`),
		event(10, "ORDER_COMPLETED", "ORDER", `{"total_amount": 999.99}`),
	}, ",")+`]}`, w.Body.String())
	assert.Equal(t, []string{id}, f.srv.recent.list())
}

func TestProcessOrderDecimalPrices(t *testing.T) {
	t.Parallel()
	f := setup(t)
	// Prices that a float64 cannot hold exactly add up to the cent, and a
	// price may be written as a string holding a decimal.
	id := f.place("/process_order", `{
		"customer_data": {"name": "Ada Lovelace", "email": "ada@example.com", "address": "12 St James's Square, London"},
		"items": [{"name": "pen", "price": 0.10, "quantity": 3}, {"name": "ink", "price": "0.20", "quantity": 1},
		          {"name": "paper", "price": 12345678901.01, "quantity": 7}]
	}`)
	st := f.wait(id)
	assert.Equal(t, orderflow.Money(3*10+20+7*1234567890101), st.Total)
	w := f.do(http.MethodGet, "/orders/"+id+"/status", "")
	var body struct {
		Order struct {
			Total json.RawMessage `json:"total_amount"`
		} `json:"order"`
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body))
	assert.Equal(t, "86419752307.57", string(body.Order.Total))
}

func TestProcessOrderRejects(t *testing.T) {
	t.Parallel()
	f := setup(t)
	item := func(fields string) string {
		return `{"customer_data": {"name": "Ada", "email": "ada@example.com", "address": "1 Main St"}, "items": [` + fields + `]}`
	}
	for _, tc := range []struct {
		name   string
		target string
		body   string
		header []string
		code   int
		err    string
	}{
		{"empty body", "/process_order", "", nil, 400,
			"request body is empty: want a JSON object with customer_data and items"},
		{"cut short", "/process_order", `{"items": [`, nil, 400,
			"malformed JSON: the body ends in the middle of a value"},
		{"syntax error", "/process_order", `{"items" []}`, nil, 400,
			"malformed JSON at byte 10: invalid character '[' after object key"},
		{"two objects", "/process_order", `{} {}`, nil, 400,
			"malformed JSON: unexpected data after the JSON object"},
		{"trailing garbage", "/process_order", `{"items": []} x`, nil, 400,
			"malformed JSON: unexpected data after the JSON object"},
		{"array body", "/process_order", `[]`, nil, 400,
			"request body: want an object, got array"},
		{"customer_data not an object", "/process_order", `{"customer_data": "Ada"}`, nil, 400,
			"customer_data: want an object, got string"},
		{"name not a string", "/process_order", `{"customer_data": {"name": 5}}`, nil, 400,
			"customer_data.name: want a string, got number"},
		{"items not an array", "/process_order", `{"items": {}}`, nil, 400,
			"items: want an array, got object"},
		{"item not an object", "/process_order", item(`5`), nil, 400,
			"items[0]: want an object, got number"},
		{"quantity a string", "/process_order", item(`{"name": "pen", "price": 1, "quantity": 1}, {"name": "ink", "price": 1, "quantity": "2"}`), nil, 400,
			"items[1].quantity: want an integer, got string"},
		{"quantity fractional", "/process_order", item(`{"name": "pen", "price": 1, "quantity": 2.5}`), nil, 400,
			"items[0].quantity: want an integer, got number 2.5"},
		{"price a boolean", "/process_order", item(`{"name": "pen", "price": true, "quantity": 1}`), nil, 400,
			`items[0].price: invalid amount: "true": not a plain decimal number`},
		{"price with three decimals", "/process_order", item(`{"name": "pen", "price": 1.234, "quantity": 1}`), nil, 400,
			`items[0].price: invalid amount: "1.234": more than two decimals`},
		{"price with an exponent", "/process_order", item(`{"name": "pen", "price": 1e3, "quantity": 1}`), nil, 400,
			`items[0].price: invalid amount: "1e3": not a plain decimal number`},
		{"unknown field", "/process_order", `{"customer": {}}`, nil, 400,
			`unknown field "customer"`},
		{"unknown customer field", "/process_order", `{"customer_data": {"phone": "555"}}`, nil, 400,
			`customer_data: unknown field "phone"`},
		{"unknown item field", "/process_order", item(`{"name": "pen", "price": 1, "quantity": 1}, {"sku": "X1"}`), nil, 400,
			`items[1]: unknown field "sku"`},
		{"order_id is not the client's", "/process_order", `{"order_id": "mine"}`, nil, 400,
			`unknown field "order_id"`},
		{"body over the limit", "/process_order", item(`{"name": "` + strings.Repeat("x", 1<<20) + `", "price": 1, "quantity": 1}`), nil, 413,
			"request body larger than 1048576 bytes"},
		{"not JSON", "/process_order", orderJSON, []string{"Content-Type", "text/plain"}, 415,
			`Content-Type "text/plain": want application/json`},
		{"blank Idempotency-Key", "/process_order", orderJSON, []string{"Idempotency-Key", " "}, 400,
			"the Idempotency-Key header is empty"},
		{"long Idempotency-Key", "/process_order", orderJSON, []string{"Idempotency-Key", strings.Repeat("k", 201)}, 400,
			"the Idempotency-Key header is longer than 200 characters"},
		{"non-ASCII Idempotency-Key", "/process_order", orderJSON, []string{"Idempotency-Key", "clé"}, 400,
			"the Idempotency-Key header may hold only printable ASCII characters"},
		{"unknown fail_step", "/process_order?fail_step=validate", orderJSON, nil, 400,
			`fail_step "validate": want payment, inventory or shipping`},
		{"unknown fail_mode", "/process_order?fail_step=payment&fail_mode=slow", orderJSON, nil, 400,
			`fail_mode "slow": want refused or unavailable`},
		{"fail_mode alone", "/process_order?fail_mode=refused", orderJSON, nil, 400,
			"fail_mode needs fail_step"},
		{"no items", "/process_order", `{"customer_data": {"name": "Ada", "email": "ada@example.com", "address": "1 Main St"}, "items": []}`, nil, 422,
			"invalid order: items: an order needs at least one item"},
		{"no customer", "/process_order", `{"items": [{"name": "pen", "price": 1, "quantity": 1}]}`, nil, 422,
			"invalid order: customer_data.name: must not be empty; customer_data.address: must not be empty; " +
				"customer_data.email: must not be empty"},
		{"every field wrong", "/process_order", `{"customer_data": {"name": " ", "email": "ada@", "address": ""},
			"items": [{"name": "pen", "price": -1, "quantity": 0}]}`, nil, 422,
			`invalid order: customer_data.name: must not be empty; customer_data.address: must not be empty; ` +
				`customer_data.email: malformed email address "ada@"; items[0].price: must be positive, got -1.00; ` +
				`items[0].quantity: must be positive, got 0`},
		{"failing order that is invalid", "/process_order?fail_step=payment", `{"items": []}`, nil, 422,
			"invalid order: customer_data.name: must not be empty; customer_data.address: must not be empty; " +
				"customer_data.email: must not be empty; items: an order needs at least one item"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := f.do(http.MethodPost, tc.target, tc.body, tc.header...)
			assert.Equal(t, tc.code, w.Code)
			assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
			body := jsonOf(t, w.Body.Bytes())
			assert.Equal(t, false, body["success"])
			assert.Equal(t, tc.err, body["error"])
			assert.NotEmpty(t, f.logs.lines(`msg="http request" method=POST path=/process_order status=`+fmt.Sprint(tc.code),
				"error="+fmt.Sprintf("%q", tc.err)), "the error is logged")
		})
	}

	// Nothing was created.
	h := f.sys.Health(context.Background())
	assert.Zero(t, h.InFlight+h.Completed+h.Compensated, "orders created")
	assert.Empty(t, f.payment.Charges())
	assert.Empty(t, f.srv.recent.list())
}

func TestProcessOrderProblems(t *testing.T) {
	t.Parallel()
	f := setup(t)
	w := f.do(http.MethodPost, "/process_order", `{"customer_data": {"name": "Ada", "email": "not an email", "address": "1 Main St"},
		"items": [{"name": "pen", "price": 1, "quantity": 1}, {"name": "pen", "price": 2, "quantity": 1}]}`)
	require.Equal(t, http.StatusUnprocessableEntity, w.Code)
	assert.JSONEq(t, `{"success": false,
		"error": "invalid order: customer_data.email: malformed email address \"not an email\"; items[1].price: \"pen\" appears twice with different prices (1.00 and 2.00)",
		"problems": [
			{"field": "customer_data.email", "message": "malformed email address \"not an email\""},
			{"field": "items[1].price", "message": "\"pen\" appears twice with different prices (1.00 and 2.00)"}
		]}`, w.Body.String())
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	f := setup(t)
	id := f.place("/process_order", orderJSON, "Idempotency-Key", "order-attempt-1")
	assert.Equal(t, uuid.NewSHA1(keyNamespace, []byte("order-attempt-1")).String(), id)
	f.wait(id)

	// A retry gets the same order, even one that asks for a failure: the
	// order exists, and is left as it is.
	for _, target := range []string{"/process_order", "/process_order?fail_step=payment"} {
		w := f.do(http.MethodPost, target, orderJSON, "Idempotency-Key", "order-attempt-1")
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		assert.JSONEq(t, `{"success": true, "order_id": "`+id+`", "message": "order already submitted",
			"timestamp": "2025-01-01T00:00:00Z", "duplicate": true}`, w.Body.String())
	}
	assert.Equal(t, orderflow.StatusCompleted, f.wait(id).Status)

	// The key with another order is a conflict, and creates nothing.
	w := f.do(http.MethodPost, "/process_order", strings.Replace(orderJSON, `"quantity": 1`, `"quantity": 2`, 1),
		"Idempotency-Key", "order-attempt-1")
	assert.Equal(t, http.StatusConflict, w.Code)
	assert.JSONEq(t, `{"success": false, "error": "Idempotency-Key already used for a different order"}`, w.Body.String())

	assert.Len(t, f.payment.Charges(), 1, "one charge for three requests")
	assert.Equal(t, []string{id}, f.srv.recent.list())
	h := f.sys.Health(context.Background())
	assert.Equal(t, 1, h.Completed+h.InFlight)
}

func TestUnknownOrder(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, path := range []string{"/orders/nope/status", "/orders/nope/events", "/orders/nope/stream"} {
		w := f.do(http.MethodGet, path, "")
		assert.Equal(t, http.StatusNotFound, w.Code, path)
		assert.JSONEq(t, `{"success": false, "error": "order \"nope\" not found"}`, w.Body.String(), path)
	}
	w := f.do(http.MethodGet, "/orders/"+strings.Repeat("x", 300)+"/status", "")
	assert.Equal(t, http.StatusNotFound, w.Code, "an ID no order can have")
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, tc := range []struct {
		method, path string
		code         int
		allow, err   string
	}{
		{http.MethodGet, "/process_order", 405, "POST", "GET not allowed on /process_order; use POST"},
		{http.MethodDelete, "/health", 405, "GET, HEAD", "DELETE not allowed on /health; use GET, HEAD"},
		{http.MethodPost, "/orders/x/status", 405, "GET, HEAD", "POST not allowed on /orders/x/status; use GET, HEAD"},
		{http.MethodPut, "/", 405, "GET, HEAD", "PUT not allowed on /; use GET, HEAD"},
		{http.MethodGet, "/orders", 404, "", "no route for GET /orders"},
		{http.MethodGet, "/orders/x", 404, "", "no route for GET /orders/x"},
		{http.MethodGet, "/assets/secret.txt", 404, "", "no asset secret.txt"},
	} {
		w := f.do(tc.method, tc.path, "")
		assert.Equal(t, tc.code, w.Code, "%s %s", tc.method, tc.path)
		assert.Equal(t, tc.allow, w.Header().Get("Allow"), "%s %s", tc.method, tc.path)
		assert.JSONEq(t, `{"success": false, "error": `+fmt.Sprintf("%q", tc.err)+`}`, w.Body.String())
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	f := setup(t)
	health := func() (int, map[string]any) {
		w := f.do(http.MethodGet, "/health", "")
		return w.Code, jsonOf(t, w.Body.Bytes())
	}

	code, h := health()
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "healthy", h["state"])
	assert.Equal(t, map[string]any{"payment": "closed", "inventory": "closed", "shipping": "closed"}, h["breakers"])
	assert.Equal(t, map[string]any{
		"payment": map[string]any{"breaker": "closed"}, "inventory": map[string]any{"breaker": "closed"}, "shipping": map[string]any{"breaker": "closed"},
	}, h["services"])

	remove := f.shipping.FailAlways(nil) // the courier is down: still serving
	code, h = health()
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "degraded", h["state"])
	assert.Equal(t, []any{"shipping: orderflow: service unavailable"}, h["reasons"])
	remove()

	id := f.place("/process_order", orderJSON)
	f.wait(id)
	require.NoError(t, f.sys.Shutdown(context.Background()))
	code, h = health()
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "stopped", h["state"])

	w := f.do(http.MethodPost, "/process_order", orderJSON)
	assert.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.Equal(t, "5", w.Header().Get("Retry-After"))
	assert.JSONEq(t, `{"success": false, "error": "the order system is not running"}`, w.Body.String())
	for _, path := range []string{"/orders/" + id + "/status", "/orders/" + id + "/events", "/orders/" + id + "/stream", "/orders/feed"} {
		w := f.do(http.MethodGet, path, "")
		assert.Equal(t, http.StatusServiceUnavailable, w.Code, path)
		assert.JSONEq(t, `{"success": false, "error": "the order system is not running"}`, w.Body.String(), path)
	}
}

func TestOverload(t *testing.T) {
	t.Parallel()
	f, g := gated(t, func(c *orderflow.Config) { c.Engine.MaxInFlight = 1 })
	first := f.place("/process_order", orderJSON)
	g.waitReached(t, first) // in flight, holding the only slot

	w := f.do(http.MethodPost, "/process_order", orderJSON, "Idempotency-Key", "second")
	assert.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.Equal(t, "1", w.Header().Get("Retry-After"))
	assert.JSONEq(t, `{"success": false, "error": "too many orders in flight; retry later"}`, w.Body.String())
	assert.Len(t, f.logs.lines(`level=WARN msg="http request" method=POST path=/process_order status=503`,
		`error="too many orders in flight; retry later"`), 1)

	second := uuid.NewSHA1(keyNamespace, []byte("second")).String()
	assert.Equal(t, http.StatusNotFound, f.do(http.MethodGet, "/orders/"+second+"/status", "").Code, "the refused order was not created")
	g.release()
	assert.Equal(t, orderflow.StatusCompleted, f.wait(first).Status, "the order in flight is unaffected")
}

func TestConcurrentOrders(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ts := serveTest(t, f.srv)
	client := ts.Client()

	const n = 100
	ids := make([]string, n)
	errs := make([]error, n)
	want := make([]orderflow.Money, n)
	var wg sync.WaitGroup
	for i := range n {
		price := orderflow.Money(1000 + 7*i) // 10.00, 10.07, 10.14, …
		qty := i%5 + 1
		want[i] = price * orderflow.Money(qty)
		body := fmt.Sprintf(`{"customer_data": {"name": "Customer %d", "email": "c%03d@example.com", "address": "%d Main St"},
			"items": [{"name": "widget", "price": %s, "quantity": %d}, {"name": "gift wrap", "price": 0.01, "quantity": 1}]}`,
			i, i, i+1, price, qty)
		want[i]++
		wg.Go(func() {
			resp, err := client.Post(ts.URL+"/process_order", "application/json", strings.NewReader(body))
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			var r orderflow.Receipt
			if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
				errs[i] = err
				return
			}
			if resp.StatusCode != http.StatusAccepted || !r.Success {
				errs[i] = fmt.Errorf("order %d: %s, %+v", i, resp.Status, r)
			}
			ids[i] = r.OrderID
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}

	seen := map[string]bool{}
	var sum orderflow.Money
	for i, id := range ids {
		assert.False(t, seen[id], "order ID %s given twice", id)
		seen[id] = true
		st := f.wait(id)
		assert.Equal(t, orderflow.StatusCompleted, st.Status, "order %d", i)
		assert.Equal(t, want[i], st.Total, "order %d", i)
		_, used := f.payment.Credit(fmt.Sprintf("c%03d@example.com", i))
		assert.Equal(t, want[i], used, "charged to customer %d", i)
		sum += want[i]

		resp, err := client.Get(ts.URL + "/orders/" + id + "/status")
		require.NoError(t, err)
		var body struct {
			Order struct {
				Status string          `json:"status"`
				Total  json.RawMessage `json:"total_amount"`
			} `json:"order"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		resp.Body.Close()
		assert.Equal(t, "completed", body.Order.Status)
		assert.Equal(t, want[i].String(), string(body.Order.Total), "order %d's total as JSON", i)
	}
	var charged orderflow.Money
	for _, c := range f.payment.Charges() {
		charged += c.Amount
	}
	assert.Equal(t, sum, charged, "every cent charged once")
	assert.Len(t, f.payment.Charges(), n)
	assert.Len(t, f.srv.recent.list(), f.srv.cfg.RecentOrders, "the dashboard keeps the latest")
}

func TestInjectedFailures(t *testing.T) {
	t.Parallel()
	ok := func(typ string) string { return typ }
	fail := func(typ string) string { return typ + " failed" }
	undo := func(typ string) string { return typ + " undo" }
	for _, tc := range []struct {
		step, mode string
		events     []string
		err        string
	}{
		{"payment", "refused", []string{ok("ORDER_CREATED"), ok("ORDER_VALIDATED"), fail("PAYMENT_PROCESSED"),
			undo("ORDER_CANCELED")}, "card declined (injected fault)"},
		{"payment", "unavailable", []string{ok("ORDER_CREATED"), ok("ORDER_VALIDATED"), fail("PAYMENT_PROCESSED"),
			undo("PAYMENT_REFUNDED"), undo("ORDER_CANCELED")}, "payment service unavailable (injected fault)"},
		{"inventory", "refused", []string{ok("ORDER_CREATED"), ok("ORDER_VALIDATED"), ok("PAYMENT_PROCESSED"),
			fail("INVENTORY_RESERVED"), undo("PAYMENT_REFUNDED"), undo("ORDER_CANCELED")}, "out of stock (injected fault)"},
		{"inventory", "unavailable", []string{ok("ORDER_CREATED"), ok("ORDER_VALIDATED"), ok("PAYMENT_PROCESSED"),
			fail("INVENTORY_RESERVED"), undo("INVENTORY_RELEASED"), undo("PAYMENT_REFUNDED"), undo("ORDER_CANCELED")},
			"inventory service unavailable (injected fault)"},
		{"shipping", "refused", []string{ok("ORDER_CREATED"), ok("ORDER_VALIDATED"), ok("PAYMENT_PROCESSED"),
			ok("INVENTORY_RESERVED"), fail("ORDER_SHIPPED"), undo("INVENTORY_RELEASED"), undo("PAYMENT_REFUNDED"),
			undo("ORDER_CANCELED")}, "no courier serves this address (injected fault)"},
		{"shipping", "unavailable", []string{ok("ORDER_CREATED"), ok("ORDER_VALIDATED"), ok("PAYMENT_PROCESSED"),
			ok("INVENTORY_RESERVED"), fail("ORDER_SHIPPED"), undo("SHIPMENT_CANCELED"), undo("INVENTORY_RELEASED"),
			undo("PAYMENT_REFUNDED"), undo("ORDER_CANCELED")}, "shipping service unavailable (injected fault)"},
	} {
		t.Run(tc.step+"/"+tc.mode, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			id := f.place("/process_order?fail_step="+tc.step+"&fail_mode="+tc.mode, orderJSON)
			other := f.place("/process_order", orderJSON) // placed while the fault is in place
			f.fireRetries(id)
			st := f.wait(id)
			assert.Equal(t, orderflow.StatusFailed, st.Status)
			assert.Equal(t, tc.err, st.Error)
			assert.Equal(t, orderflow.StatusCompleted, f.wait(other).Status, "the fault is for one order only")

			events, err := f.sys.GetEvents(context.Background(), id)
			require.NoError(t, err)
			var got []string
			for _, e := range events {
				switch {
				case !e.Success:
					got = append(got, fail(string(e.Type)))
				case e.Compensation:
					got = append(got, undo(string(e.Type)))
				default:
					got = append(got, ok(string(e.Type)))
				}
			}
			assert.Equal(t, tc.events, got)

			w := f.do(http.MethodGet, "/orders/"+id+"/status", "")
			order, _ := jsonOf(t, w.Body.Bytes())["order"].(map[string]any)
			assert.Equal(t, "failed", order["status"])
			assert.Equal(t, tc.err, order["error"])
			for _, c := range f.payment.Charges() {
				if c.OrderID == id {
					assert.True(t, c.Refunded || c.Voided, "the failed order's charge is undone")
				}
			}
		})
	}
}

// faultCounter is a shipping service that tells when the faults injected
// into it are removed.
type faultCounter struct {
	*orderflow.ShippingService
	mu      sync.Mutex
	active  int
	removed chan string // the order of each fault removed
}

func (c *faultCounter) Inject(f orderflow.Fault) func() {
	remove := c.ShippingService.Inject(f)
	c.mu.Lock()
	c.active++
	c.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			remove()
			c.mu.Lock()
			c.active--
			c.mu.Unlock()
			c.removed <- f.OrderID
		})
	}
}

func (c *faultCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.active
}

func TestFaultOutlivesNoOrder(t *testing.T) {
	t.Parallel()
	counter := &faultCounter{removed: make(chan string, 10)}
	f := setup(t, func(c *orderflow.Config) {
		counter.ShippingService = c.Shipping.(*orderflow.ShippingService)
		c.Shipping = counter
	})

	// An order that fails before shipping never meets its shipping fault;
	// the fault goes once the order has settled.
	id := uuid.NewSHA1(keyNamespace, []byte("k1")).String()
	f.payment.FailOrder(id, saga.Permanent(errors.New("card declined")))
	assert.Equal(t, id, f.place("/process_order?fail_step=shipping", orderJSON, "Idempotency-Key", "k1"))
	assert.Equal(t, orderflow.StatusFailed, f.wait(id).Status)
	ctx, cancel := context.WithTimeout(context.Background(), sagatest.WaitTimeout)
	defer cancel()
	select {
	case got := <-counter.removed:
		assert.Equal(t, id, got)
	case <-ctx.Done():
		t.Fatal("the fault outlived its order")
	}
	assert.Zero(t, counter.count())

	// A request that creates no order leaves no fault, and a repeated one
	// injects none.
	w := f.do(http.MethodPost, "/process_order?fail_step=shipping", `{"items": []}`)
	require.Equal(t, http.StatusUnprocessableEntity, w.Code)
	assert.Zero(t, counter.count())
	w = f.do(http.MethodPost, "/process_order?fail_step=shipping", orderJSON, "Idempotency-Key", "k1")
	require.Equal(t, http.StatusOK, w.Code)
	assert.Zero(t, counter.count())
}

// plainPayment is a payment gateway that takes no injected faults.
type plainPayment struct{ orderflow.PaymentGateway }

func TestFaultNeedsInjectableService(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *orderflow.Config) { c.Payment = plainPayment{c.Payment} })
	w := f.do(http.MethodPost, "/process_order?fail_step=payment", orderJSON)
	assert.Equal(t, http.StatusBadRequest, w.Code)
	assert.JSONEq(t, `{"success": false, "error": "fail_step \"payment\": the payment service takes no injected faults"}`, w.Body.String())
	assert.Empty(t, f.srv.recent.list(), "nothing created")
	id := f.place("/process_order?fail_step=inventory", orderJSON)
	assert.Equal(t, orderflow.StatusFailed, f.wait(id).Status, "the other services still take faults")
}

func TestRequestLog(t *testing.T) {
	t.Parallel()
	f := setup(t)
	id := f.place("/process_order?fail_step=payment", orderJSON)
	f.wait(id)
	f.do(http.MethodGet, "/orders/"+id+"/status", "")
	f.do(http.MethodGet, "/orders/missing/events", "")

	assert.Equal(t, []string{
		`level=INFO msg="http request" method=POST path=/process_order status=202 bytes=129 duration=0s order_id=` + id,
		`level=INFO msg="http request" method=GET path=/orders/` + id + `/status status=200 bytes=388 duration=0s order_id=` + id,
		`level=INFO msg="http request" method=GET path=/orders/missing/events status=404 bytes=56 duration=0s order_id=missing error="order \"missing\" not found"`,
	}, f.logs.lines(`msg="http request"`))
	// The engine's lines about the order carry the same ID.
	assert.Equal(t, []string{
		`level=WARN msg="saga: attempt failed" saga_id=` + id + ` step=payment attempt=1 error="card declined (injected fault)"`,
		`level=WARN msg="saga: step failed, compensating" saga_id=` + id + ` step=payment error="card declined (injected fault)"`,
		`level=INFO msg="saga: compensated" saga_id=` + id,
	}, f.logs.waitLines(3, "saga_id="+id))
}

func TestPanicIsAnswered(t *testing.T) {
	t.Parallel()
	f := setup(t)
	h := f.srv.logRequests(recoverPanics(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("boom")
	})))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/boom", nil))
	assert.Equal(t, http.StatusInternalServerError, w.Code)
	assert.JSONEq(t, `{"success": false, "error": "internal error"}`, w.Body.String())
	lines := f.logs.lines(`level=ERROR msg="http request" method=GET path=/boom status=500`, `error="panic: boom\n`, "goroutine ")
	assert.Len(t, lines, 1, f.logs.String())

	// Once the response has begun, it is aborted instead.
	h = f.srv.logRequests(recoverPanics(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("{"))
		panic("late boom")
	})))
	assert.PanicsWithValue(t, http.ErrAbortHandler, func() {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/late", nil))
	})
	assert.Len(t, f.logs.lines(`msg="http request" method=GET path=/late status=200`, `error="panic: late boom\n`), 1)
}
