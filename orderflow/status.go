package orderflow

import "fmt"

// Status is where an order is in its life. The zero value is not a valid
// status.
//
// The state machine:
//
//	pending → validated → payment_processed → inventory_reserved → shipped → completed
//	any of pending … shipped → compensating → failed
//
// Completed and failed are terminal.
type Status uint8

// The statuses of an order.
const (
	StatusPending Status = iota + 1
	StatusValidated
	StatusPaymentProcessed
	StatusInventoryReserved
	StatusShipped
	StatusCompleted
	StatusCompensating
	StatusFailed
)

var statusNames = [...]string{
	StatusPending:           "pending",
	StatusValidated:         "validated",
	StatusPaymentProcessed:  "payment_processed",
	StatusInventoryReserved: "inventory_reserved",
	StatusShipped:           "shipped",
	StatusCompleted:         "completed",
	StatusCompensating:      "compensating",
	StatusFailed:            "failed",
}

// String returns the status's snake_case name, such as "payment_processed".
func (s Status) String() string {
	if !s.Valid() {
		return fmt.Sprintf("Status(%d)", uint8(s))
	}
	return statusNames[s]
}

// Valid reports whether s is one of the declared statuses.
func (s Status) Valid() bool { return s != 0 && int(s) < len(statusNames) }

// Terminal reports whether the order has ended: completed or failed.
func (s Status) Terminal() bool { return s == StatusCompleted || s == StatusFailed }

// CanTransition reports whether an order may move from s to next.
func (s Status) CanTransition(next Status) bool {
	switch {
	case !s.Valid() || !next.Valid():
		return false
	case s < StatusCompleted: // pending … shipped
		return next == s+1 || next == StatusCompensating
	case s == StatusCompensating:
		return next == StatusFailed
	}
	return false
}

// check returns a *TransitionError if s may not move to next.
func (s Status) check(next Status) error {
	if !s.CanTransition(next) {
		return &TransitionError{From: s, To: next}
	}
	return nil
}

// MarshalText encodes the status as its name.
func (s Status) MarshalText() ([]byte, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("orderflow: invalid status %d", uint8(s))
	}
	return []byte(statusNames[s]), nil
}

// UnmarshalText decodes a name written by MarshalText.
func (s *Status) UnmarshalText(b []byte) error {
	for i, name := range statusNames {
		if name != "" && name == string(b) {
			*s = Status(i)
			return nil
		}
	}
	return fmt.Errorf("orderflow: unknown status %q", b)
}
