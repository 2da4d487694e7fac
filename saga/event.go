package saga

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// EventType says what an [Event] records. The zero value is not a valid type.
type EventType uint8

// The event types. Every change to an instance is one of these, appended to
// the instance's log.
const (
	// EventSagaStarted is always the first event. It carries the initial
	// State, the Definition name and Version, and the saga deadline in At
	// (zero when there is none).
	EventSagaStarted EventType = iota + 1
	// EventStepStarted records that attempt Attempt of Step is about to run.
	EventStepStarted
	// EventStepSucceeded records that Step succeeded; State is the state
	// after it.
	EventStepSucceeded
	// EventStepAttemptFailed records that attempt Attempt of Step failed
	// with Error.
	EventStepAttemptFailed
	// EventRetryScheduled records that Step (or its compensation) runs
	// again at At, as attempt Attempt.
	EventRetryScheduled
	// EventStepFailed records that Step gave up with Error: its retries
	// were spent, its error was permanent, or the saga deadline passed.
	EventStepFailed
	// EventCompensationStarted records that the saga is undoing its
	// steps, because of Error, starting with Step: the failed step itself
	// when its outcome is unknown, else the newest completed step with a
	// compensation; empty when there is nothing to undo, or when an
	// operator retried a stuck instance.
	EventCompensationStarted
	// EventStepCompensated records that Step's compensation succeeded;
	// State is the state after it.
	EventStepCompensated
	// EventCompensationAttemptFailed records that attempt Attempt of Step's
	// compensation failed with Error.
	EventCompensationAttemptFailed
	// EventSagaCompleted records that every step succeeded.
	EventSagaCompleted
	// EventSagaCompensated records that every completed step was undone.
	EventSagaCompensated
	// EventSagaStuck records that Step's compensation failed past its limit
	// with Error; the instance waits for an operator.
	EventSagaStuck
	// EventSignalReceived records the delivery of signal Signal with
	// Payload and DedupKey.
	EventSignalReceived
)

var eventTypeNames = [...]string{
	EventSagaStarted:               "saga_started",
	EventStepStarted:               "step_started",
	EventStepSucceeded:             "step_succeeded",
	EventStepAttemptFailed:         "step_attempt_failed",
	EventRetryScheduled:            "retry_scheduled",
	EventStepFailed:                "step_failed",
	EventCompensationStarted:       "compensation_started",
	EventStepCompensated:           "step_compensated",
	EventCompensationAttemptFailed: "compensation_attempt_failed",
	EventSagaCompleted:             "saga_completed",
	EventSagaCompensated:           "saga_compensated",
	EventSagaStuck:                 "saga_stuck",
	EventSignalReceived:            "signal_received",
}

// String returns the snake_case name of the type, such as "step_started".
func (t EventType) String() string {
	if t == 0 || int(t) >= len(eventTypeNames) {
		return "EventType(" + strconv.Itoa(int(t)) + ")"
	}
	return eventTypeNames[t]
}

// Valid reports whether t is one of the declared event types.
func (t EventType) Valid() bool { return t != 0 && int(t) < len(eventTypeNames) }

// MarshalText encodes the type as its name.
func (t EventType) MarshalText() ([]byte, error) {
	if !t.Valid() {
		return nil, fmt.Errorf("%w: event type %d", ErrInvalidEvent, uint8(t))
	}
	return []byte(eventTypeNames[t]), nil
}

// UnmarshalText decodes a name written by MarshalText.
func (t *EventType) UnmarshalText(b []byte) error {
	for i, name := range eventTypeNames {
		if name != "" && name == string(b) {
			*t = EventType(i)
			return nil
		}
	}
	return fmt.Errorf("%w: unknown event type %q", ErrInvalidEvent, b)
}

// Event is one entry of an instance's log. Which fields are set depends on
// Type (see the EventType constants); the rest are zero.
//
// Events are values: the engine never changes an event after appending it,
// and stores hand out copies.
type Event struct {
	SagaID string    `json:"saga_id"`
	Run    string    `json:"run"` // the instance's run ID, fixed at start
	Seq    uint64    `json:"seq"` // 1, 2, 3 … within the instance
	Type   EventType `json:"type"`
	Time   time.Time `json:"time"` // on the engine's clock

	Step    string    `json:"step,omitempty"`
	Attempt int       `json:"attempt,omitempty"`
	Error   string    `json:"error,omitempty"`
	At      time.Time `json:"at,omitzero"`

	State json.RawMessage `json:"state,omitempty"`

	Signal   string          `json:"signal,omitempty"`
	DedupKey string          `json:"dedup_key,omitempty"`
	Payload  json.RawMessage `json:"payload,omitempty"`

	Definition string `json:"definition,omitempty"`
	Version    int    `json:"version,omitempty"`
}

// ID returns the event's unique ID: the instance's run ID and the sequence
// number. No two events of any instances share an ID.
func (e *Event) ID() string {
	return e.Run + "/" + strconv.FormatUint(e.Seq, 10)
}
