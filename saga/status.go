package saga

import "fmt"

// Status is where an instance is in its life. The zero value is not a valid
// status.
//
// The allowed transitions are:
//
//	pending      → running
//	running      → completed | compensating
//	compensating → compensated | stuck
//	stuck        → compensating (an operator retried it)
//
// Completed and compensated are terminal. Stuck is not terminal but the
// engine does not advance a stuck instance on its own: it waits for
// [Coordinator.Retry].
type Status uint8

// The statuses of an instance.
const (
	StatusPending Status = iota + 1
	StatusRunning
	StatusCompleted
	StatusCompensating
	StatusCompensated
	StatusStuck
)

var statusNames = [...]string{
	StatusPending:      "pending",
	StatusRunning:      "running",
	StatusCompleted:    "completed",
	StatusCompensating: "compensating",
	StatusCompensated:  "compensated",
	StatusStuck:        "stuck",
}

// String returns the lower-case name of the status, such as "running".
func (s Status) String() string {
	if s == 0 || int(s) >= len(statusNames) {
		return fmt.Sprintf("Status(%d)", uint8(s))
	}
	return statusNames[s]
}

// Terminal reports whether the instance has ended for good: completed or
// compensated.
func (s Status) Terminal() bool {
	return s == StatusCompleted || s == StatusCompensated
}

// Settled reports whether the engine has nothing more to do for the instance
// on its own: it is terminal or stuck.
func (s Status) Settled() bool {
	return s.Terminal() || s == StatusStuck
}

// CanTransition reports whether an instance may move from s to next.
func (s Status) CanTransition(next Status) bool {
	switch s {
	case StatusPending:
		return next == StatusRunning
	case StatusRunning:
		return next == StatusCompleted || next == StatusCompensating
	case StatusCompensating:
		return next == StatusCompensated || next == StatusStuck
	case StatusStuck:
		return next == StatusCompensating
	}
	return false
}
