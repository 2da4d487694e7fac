package saga

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Errors returned by this package wrap one of these, so
// callers test them with errors.Is.
var (
	// ErrInvalidDefinition: a definition was rejected by NewDefinition.
	ErrInvalidDefinition = errors.New("saga: invalid definition")
	// ErrInvalidArgument: a call got an argument it cannot use, such as an
	// empty ID. Nothing was changed.
	ErrInvalidArgument = errors.New("saga: invalid argument")
	// ErrDuplicate: an instance with that ID already exists. Start never
	// creates a second instance with the same ID.
	ErrDuplicate = errors.New("saga: instance already exists")
	// ErrNotFound: no instance has that ID.
	ErrNotFound = errors.New("saga: instance not found")
	// ErrConflict: an append expected a different last sequence number;
	// another writer got there first. Nothing was appended.
	ErrConflict = errors.New("saga: sequence conflict")
	// ErrFenced: the store refused a write because this process no longer
	// owns the instance (its lease was taken over). Nothing was appended.
	ErrFenced = errors.New("saga: instance owned elsewhere")
	// ErrInvalidEvent: an event is malformed or would make an instance take a
	// transition its status does not allow.
	ErrInvalidEvent = errors.New("saga: invalid event")
	// ErrOverloaded: the coordinator already runs as many instances as it
	// may; try again later.
	ErrOverloaded = errors.New("saga: overloaded")
	// ErrNotStarted: the coordinator's Startup has not run.
	ErrNotStarted = errors.New("saga: coordinator not started")
	// ErrStopped: the coordinator is shutting down or has shut down.
	ErrStopped = errors.New("saga: coordinator stopped")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("saga: store closed")
	// ErrFinished: the instance has already ended, so it cannot take the
	// request (a late signal, for example).
	ErrFinished = errors.New("saga: instance finished")
	// ErrNotStuck: Retry was called on an instance that is not stuck.
	ErrNotStuck = errors.New("saga: instance not stuck")
	// ErrStepTimeout: an attempt ran past its step's timeout.
	ErrStepTimeout = errors.New("saga: step timed out")
	// ErrDeadline: the saga's own deadline passed before it completed.
	ErrDeadline = errors.New("saga: saga deadline exceeded")
	// ErrSignalTimeout: a step waited for a signal longer than its
	// SignalTimeout.
	ErrSignalTimeout = errors.New("saga: signal wait timed out")
	// ErrBreakerOpen: the step's circuit breaker is open, so the action was
	// not called. It never counts as a spent attempt.
	ErrBreakerOpen = errors.New("saga: circuit breaker open")
	// ErrUnfinished: Shutdown returned before some instances ended; see
	// [UnfinishedError] for which.
	ErrUnfinished = errors.New("saga: instances unfinished at shutdown")
)

// PermanentError marks an error that retrying cannot fix, such as
// insufficient credit. A step that returns one gives up at once.
type PermanentError struct {
	Err error
}

// Permanent wraps err so that the engine does not retry it. Permanent(nil)
// returns nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err, or an error it wraps, is a
// [PermanentError].
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// Error returns the wrapped error's message.
func (e *PermanentError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *PermanentError) Unwrap() error { return e.Err }

// PanicError is what an action or compensation that panicked returns to the
// engine: the recovered value and the stack of the panicking goroutine. The
// engine treats it as a failed attempt.
type PanicError struct {
	Value any
	Stack []byte
}

// Error returns "saga: panic: " and the panic value.
func (e *PanicError) Error() string { return fmt.Sprintf("saga: panic: %v", e.Value) }

// Unwrap returns the panic value when it is an error, so errors.Is sees
// through a panic(err).
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// DefinitionError says why NewDefinition rejected a definition. It wraps
// [ErrInvalidDefinition].
type DefinitionError struct {
	Definition string
	Step       int // index of the offending step, or -1
	Reason     string
}

// Error names the definition, the step and the reason.
func (e *DefinitionError) Error() string {
	if e.Step >= 0 {
		return fmt.Sprintf("saga: invalid definition %q: step %d: %s", e.Definition, e.Step, e.Reason)
	}
	return fmt.Sprintf("saga: invalid definition %q: %s", e.Definition, e.Reason)
}

// Unwrap returns [ErrInvalidDefinition].
func (e *DefinitionError) Unwrap() error { return ErrInvalidDefinition }

// UnfinishedError lists the instances that had not ended when Shutdown gave
// up waiting. It wraps [ErrUnfinished].
type UnfinishedError struct {
	IDs []string
}

// Error counts the unfinished instances and names the first ten.
func (e *UnfinishedError) Error() string {
	const show = 10
	ids := e.IDs
	more := ""
	if len(ids) > show {
		more = fmt.Sprintf(" and %d more", len(ids)-show)
		ids = ids[:show]
	}
	return fmt.Sprintf("%v: %d: %s%s", ErrUnfinished, len(e.IDs), strings.Join(ids, ", "), more)
}

// Unwrap returns [ErrUnfinished].
func (e *UnfinishedError) Unwrap() error { return ErrUnfinished }
