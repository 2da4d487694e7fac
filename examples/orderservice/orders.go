package main

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"

	"github.com/google/uuid"
	"github.com/sagaflow/sagaflow/orderflow"
	"github.com/sagaflow/sagaflow/saga"
)

// maxIdempotencyKey is the longest Idempotency-Key header accepted.
const maxIdempotencyKey = 200

// keyNamespace derives order IDs from Idempotency-Key headers.
var keyNamespace = uuid.MustParse("1b4e28ba-2fa1-41d2-883f-0016d3cca427")

// processOrder is POST /process_order: it validates the body, creates the
// order and starts its saga, and answers 202 with the receipt (200 with
// the same order for a repeated Idempotency-Key). The order runs on its
// own; its status and events are at /orders/{id}/....
//
// For demonstrations, ?fail_step=payment|inventory|shipping makes that
// step fail for this order, and fail_mode says how: "refused" (the
// default; a permanent error, nothing to undo at that step) or
// "unavailable" (every attempt fails, the step gives up after its retries,
// and its own undo runs too, since nobody knows whether it took effect).
func (s *server) processOrder(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			writeError(w, r, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q: want application/json", ct))
			return
		}
	}
	key, err := idempotencyKey(r)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	fault, err := s.parseFault(r)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	body, bad := decodeOrder(w, r, s.cfg.MaxBodyBytes)
	if bad != nil {
		writeError(w, r, bad.status, bad.msg)
		return
	}

	req := orderflow.OrderRequest{Customer: body.Customer, Items: body.Items, IdempotencyKey: key}
	// The server picks the ID when a key is given, so that a retry finds the
	// order whatever else it asks, and when a fault is to be injected, since
	// the fault names the order before it exists.
	switch {
	case key != "":
		req.OrderID = uuid.NewSHA1(keyNamespace, []byte(key)).String()
	case fault != nil:
		req.OrderID = uuid.NewString()
	}
	if req.OrderID != "" {
		correlate(r, req.OrderID)
	}
	remove := s.injectFault(r, req.OrderID, fault)

	receipt, err := s.sys.ProcessOrder(r.Context(), req)
	if err != nil {
		remove()
		s.orderFailed(w, r, err)
		return
	}
	correlate(r, receipt.OrderID)
	w.Header().Set("Location", "/orders/"+receipt.OrderID+"/status")
	if receipt.Duplicate {
		remove() // the order was placed, and maybe failed, before this request
		writeJSON(w, http.StatusOK, receipt)
		return
	}
	s.recent.add(receipt.OrderID)
	if fault != nil {
		s.removeWhenSettled(receipt.OrderID, remove)
	}
	writeJSON(w, http.StatusAccepted, receipt)
}

// idempotencyKey returns the request's Idempotency-Key header, "" if none.
func idempotencyKey(r *http.Request) (string, error) {
	values := r.Header.Values("Idempotency-Key")
	switch {
	case len(values) == 0:
		return "", nil
	case len(values) > 1:
		return "", errors.New("the Idempotency-Key header is given more than once")
	}
	key := values[0]
	switch {
	case strings.TrimSpace(key) == "":
		return "", errors.New("the Idempotency-Key header is empty")
	case len(key) > maxIdempotencyKey:
		return "", fmt.Errorf("the Idempotency-Key header is longer than %d characters", maxIdempotencyKey)
	}
	for _, c := range []byte(key) {
		if c < 0x20 || c > 0x7e {
			return "", errors.New("the Idempotency-Key header may hold only printable ASCII characters")
		}
	}
	return key, nil
}

// orderFailed answers a request that ProcessOrder refused.
func (s *server) orderFailed(w http.ResponseWriter, r *http.Request, err error) {
	var invalid *orderflow.ValidationError
	switch {
	case errors.As(err, &invalid):
		body := errorBody{Error: "invalid order: "}
		for i, p := range invalid.Problems {
			field := p.Field
			if rest, ok := strings.CutPrefix(field, "customer."); ok { // the JSON calls it customer_data
				field = "customer_data." + rest
			}
			if i > 0 {
				body.Error += "; "
			}
			body.Error += field + ": " + p.Message
			body.Problems = append(body.Problems, problem{Field: field, Message: p.Message})
		}
		writeErrorBody(w, r, http.StatusUnprocessableEntity, body)
	case errors.Is(err, orderflow.ErrIdempotencyKeyReused):
		writeError(w, r, http.StatusConflict, "Idempotency-Key already used for a different order")
	case errors.Is(err, saga.ErrOverloaded):
		w.Header().Set("Retry-After", "1")
		writeError(w, r, http.StatusServiceUnavailable, "too many orders in flight; retry later")
	case errors.Is(err, saga.ErrStopped), errors.Is(err, saga.ErrNotStarted):
		w.Header().Set("Retry-After", "5")
		writeError(w, r, http.StatusServiceUnavailable, "the order system is not running")
	case r.Context().Err() != nil:
		// The client has gone; nobody reads this answer.
		writeError(w, r, http.StatusServiceUnavailable, "request canceled: "+err.Error())
	default:
		s.internalError(w, r, err)
	}
}

// internalError answers 500 without telling the client more, and logs err.
func (s *server) internalError(w http.ResponseWriter, r *http.Request, err error) {
	writeError(w, r, http.StatusInternalServerError, "internal error")
	if info := requestInfoOf(r); info != nil {
		info.err = "internal error: " + err.Error()
	}
}

// orderStatus is GET /orders/{id}/status.
func (s *server) orderStatus(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	correlate(r, id)
	st, err := s.sys.GetStatus(r.Context(), id)
	if err != nil {
		s.lookupFailed(w, r, id, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Success bool                  `json:"success"`
		Order   orderflow.OrderStatus `json:"order"`
	}{true, st})
}

// orderEvents is GET /orders/{id}/events.
func (s *server) orderEvents(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	correlate(r, id)
	events, err := s.sys.GetEvents(r.Context(), id)
	if err != nil {
		s.lookupFailed(w, r, id, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Success bool                   `json:"success"`
		OrderID string                 `json:"order_id"`
		Events  []orderflow.OrderEvent `json:"events"`
	}{true, id, events})
}

// lookupFailed answers a read of order id that failed with err.
func (s *server) lookupFailed(w http.ResponseWriter, r *http.Request, id string, err error) {
	switch {
	case errors.Is(err, orderflow.ErrNotFound):
		writeError(w, r, http.StatusNotFound, fmt.Sprintf("order %q not found", id))
	case errors.Is(err, saga.ErrStopped), errors.Is(err, saga.ErrNotStarted), errors.Is(err, saga.ErrClosed):
		w.Header().Set("Retry-After", "5")
		writeError(w, r, http.StatusServiceUnavailable, "the order system is not running")
	default:
		s.internalError(w, r, err)
	}
}
