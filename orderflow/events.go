package orderflow

import (
	"context"
	"encoding/json"
	"time"

	"github.com/sagaflow/sagaflow/saga"
)

// EventType names an order event.
type EventType string

// The order events. A good order records ORDER_CREATED, ORDER_VALIDATED,
// PAYMENT_PROCESSED, INVENTORY_RESERVED, ORDER_SHIPPED and ORDER_COMPLETED.
// An order that fails at a step records that step's event with Success
// false, then the compensations, newest first (SHIPMENT_CANCELED,
// INVENTORY_RELEASED, PAYMENT_REFUNDED), then ORDER_CANCELED. The
// compensations are those of the steps that had succeeded, and of the
// failed step itself when its outcome is unknown (it timed out or kept
// failing, rather than being refused), since it may have taken effect.
const (
	EventOrderCreated      EventType = "ORDER_CREATED"
	EventOrderValidated    EventType = "ORDER_VALIDATED"
	EventPaymentProcessed  EventType = "PAYMENT_PROCESSED"
	EventInventoryReserved EventType = "INVENTORY_RESERVED"
	EventOrderShipped      EventType = "ORDER_SHIPPED"
	EventOrderCompleted    EventType = "ORDER_COMPLETED"
	EventShipmentCanceled  EventType = "SHIPMENT_CANCELED"
	EventInventoryReleased EventType = "INVENTORY_RELEASED"
	EventPaymentRefunded   EventType = "PAYMENT_REFUNDED"
	EventOrderCanceled     EventType = "ORDER_CANCELED"
)

// Service names the part of the system an event comes from.
type Service string

// The services.
const (
	ServiceOrder     Service = "ORDER"
	ServicePayment   Service = "PAYMENT"
	ServiceInventory Service = "INVENTORY"
	ServiceShipping  Service = "SHIPPING"
)

// OrderEvent is one event of an order's history.
type OrderEvent struct {
	OrderID string `json:"order_id"`
	// Seq is the sequence number of the engine event it was made from:
	// increasing, not contiguous.
	Seq       uint64    `json:"seq"`
	Type      EventType `json:"event_type"`
	Timestamp time.Time `json:"timestamp"`
	Service   Service   `json:"service"`
	// Success is false for a step that failed, or a compensation that gave
	// up (the order is then stuck).
	Success bool `json:"success"`
	// Compensation is set for the events that undo: refunds, releases,
	// cancellations.
	Compensation bool `json:"compensation"`
	// Processed is set once the engine has acted on the event: it recorded
	// its next decision, or the event ends the order. The newest event of
	// an order in flight may show false.
	Processed bool `json:"processed"`
	// Data holds what the event is about, by key:
	//
	//	ORDER_CREATED                   customer, items (count), total_amount
	//	ORDER_VALIDATED, ORDER_COMPLETED total_amount
	//	PAYMENT_PROCESSED, PAYMENT_REFUNDED   charge_id, amount
	//	INVENTORY_RESERVED, INVENTORY_RELEASED reservation_id, items (count)
	//	ORDER_SHIPPED, SHIPMENT_CANCELED       tracking_number
	//	ORDER_CANCELED                  reason (the failure that caused it)
	//
	// A failed step (Success false) has error and attempts instead; a
	// compensation that gave up has error. Amounts are Money.
	Data map[string]any `json:"data,omitempty"`
}

// settles reports whether e is the last event of a settled order: it
// completed, was canceled, or a compensation gave up (stuck).
func (e *OrderEvent) settles() bool {
	return e.Type == EventOrderCompleted || e.Type == EventOrderCanceled || (e.Compensation && !e.Success)
}

// stepEvents gives each step's forward event, compensation event and
// service.
var stepEvents = map[string]struct {
	done, undone EventType
	service      Service
}{
	StepValidate:  {EventOrderValidated, EventOrderCanceled, ServiceOrder},
	StepPayment:   {EventPaymentProcessed, EventPaymentRefunded, ServicePayment},
	StepInventory: {EventInventoryReserved, EventInventoryReleased, ServiceInventory},
	StepShipping:  {EventOrderShipped, EventShipmentCanceled, ServiceShipping},
}

// mapper turns an order's engine events into order events, in log order.
type mapper struct {
	order   Order  // as of the last event that carried state
	failure string // why the order is being compensated
}

// next returns the order event for e, if e makes one; processed says
// whether the engine has acted on e.
func (m *mapper) next(e *saga.Event, processed bool) (OrderEvent, bool) {
	if len(e.State) > 0 {
		var o Order
		if json.Unmarshal(e.State, &o) == nil {
			m.order = o
		}
	}
	oe := OrderEvent{OrderID: e.SagaID, Seq: e.Seq, Timestamp: e.Time, Success: true, Processed: processed || e.Ends()}
	se := stepEvents[e.Step]
	switch e.Type {
	case saga.EventSagaStarted:
		oe.Type, oe.Service = EventOrderCreated, ServiceOrder
		oe.Data = map[string]any{"total_amount": m.order.Total, "items": len(m.order.Items), "customer": m.order.Customer.Name}
	case saga.EventStepSucceeded:
		oe.Type, oe.Service = se.done, se.service
		oe.Data = m.stepData(e.Step)
	case saga.EventStepFailed:
		m.failure = e.Error
		oe.Type, oe.Service, oe.Success = se.done, se.service, false
		oe.Data = map[string]any{"error": e.Error, "attempts": e.Attempt}
	case saga.EventStepCompensated:
		oe.Type, oe.Service, oe.Compensation = se.undone, se.service, true
		oe.Data = m.stepData(e.Step)
	case saga.EventSagaStuck:
		oe.Type, oe.Service, oe.Compensation, oe.Success = se.undone, se.service, true, false
		oe.Data = map[string]any{"error": e.Error}
	case saga.EventSagaCompleted:
		oe.Type, oe.Service = EventOrderCompleted, ServiceOrder
		oe.Data = map[string]any{"total_amount": m.order.Total}
	case saga.EventSagaCompensated:
		oe.Type, oe.Service, oe.Compensation = EventOrderCanceled, ServiceOrder, true
		oe.Data = map[string]any{"reason": m.failure}
	default:
		return OrderEvent{}, false
	}
	return oe, true
}

// stepData describes what a step obtained.
func (m *mapper) stepData(step string) map[string]any {
	o := &m.order
	switch step {
	case StepPayment:
		return map[string]any{"charge_id": o.ChargeID, "amount": o.Total}
	case StepInventory:
		return map[string]any{"reservation_id": o.ReservationID, "items": len(o.Items)}
	case StepShipping:
		return map[string]any{"tracking_number": o.TrackingNumber}
	}
	return map[string]any{"total_amount": o.Total}
}

// orderEvents maps a whole log.
func orderEvents(log []saga.Event) []OrderEvent {
	var m mapper
	out := make([]OrderEvent, 0, 8)
	for i := range log {
		if oe, ok := m.next(&log[i], i+1 < len(log)); ok {
			out = append(out, oe)
		}
	}
	return out
}

// GetEvents returns the order's events in order, or an error wrapping
// ErrNotFound. The engine's own events (attempts, retries, signals) are
// left out; Coordinator().Events has them all.
func (s *System) GetEvents(ctx context.Context, orderID string) ([]OrderEvent, error) {
	log, err := s.coord.Events(ctx, orderID)
	if err != nil {
		return nil, s.notFound(orderID, err)
	}
	return orderEvents(log), nil
}
