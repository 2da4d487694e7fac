package saga

import (
	"context"
	"fmt"
)

// Store persists the event logs of instances. The coordinator is its only
// writer in a process; every method must be safe for concurrent use.
//
// The contract every implementation keeps (package sagatest checks it):
//
//   - A log is a sequence of events numbered 1, 2, 3 … without gaps, all
//     with the same Run. The first is an [EventSagaStarted], the only one
//     that names the Definition and Version; [EventSagaCompleted] and
//     [EventSagaCompensated] end it, and nothing may be appended after them.
//   - Create and Append are atomic: all of the given events are stored, or
//     none is. When they return nil the events are as durable as the store
//     promises (see Durable).
//   - Append is conditional: it succeeds only if the log's last sequence
//     number is the one the caller expects, so two writers can never
//     interleave one log.
//   - A failed call changes nothing.
//   - Stores hand out copies: a caller may keep what Load returns, but must
//     not modify the events' byte slices (State, Payload), which a store may
//     share; likewise a caller must not modify those of events it has given
//     to Create or Append. A store must not keep the slice given to Create
//     or Append after the call returns (it keeps copies of the events): the
//     coordinator reuses it.
//   - After Close, every method fails with an error wrapping ErrClosed.
type Store interface {
	// Create stores a new instance whose log is events, which must start
	// with an EventSagaStarted numbered 1. It returns an error wrapping
	// ErrDuplicate if an instance with that saga ID already exists.
	Create(ctx context.Context, events []Event) error

	// Append adds events to the log of sagaID if its last sequence number
	// is expected; they must be numbered expected+1, expected+2, …. It
	// returns an error wrapping ErrNotFound if there is no such log,
	// ErrConflict if the last sequence number differs, ErrFinished if the
	// log has ended, and ErrFenced if the store no longer lets this process
	// write the instance (stores that share instances between processes).
	Append(ctx context.Context, sagaID string, expected uint64, events []Event) error

	// Load returns the whole log of sagaID in order, or an error wrapping
	// ErrNotFound.
	Load(ctx context.Context, sagaID string) ([]Event, error)

	// Unfinished returns the IDs of the instances of the named definition
	// whose logs have not ended (including stuck ones), oldest first. The
	// coordinator calls it at startup to resume them.
	Unfinished(ctx context.Context, definition string) ([]string, error)

	// Ping reports whether the store can take writes now; a nil error
	// means healthy.
	Ping(ctx context.Context) error

	// Durable reports whether logs survive Close and a crash of the
	// process. The coordinator's Shutdown waits for every instance to end
	// on a store that is not durable.
	Durable() bool

	// Close releases the store's resources. Calls after Close fail.
	Close() error
}

// Ends reports whether e ends a log: nothing may follow a completed or
// compensated saga.
func (e *Event) Ends() bool {
	return e.Type == EventSagaCompleted || e.Type == EventSagaCompensated
}

// CheckAppend validates events about to be appended to the log of sagaID
// whose last sequence number is last (0 for a new log): they must be
// non-empty, belong to sagaID, have valid types, be numbered last+1,
// last+2, …, start with EventSagaStarted exactly when last is 0, and have
// nothing after an event that ends the log; the first event must name its
// definition. Stores call it so that they all
// reject the same input; it returns an error wrapping ErrInvalidEvent or
// ErrInvalidArgument.
func CheckAppend(sagaID string, last uint64, events []Event) error {
	if sagaID == "" {
		return fmt.Errorf("%w: empty saga ID", ErrInvalidArgument)
	}
	if len(events) == 0 {
		return fmt.Errorf("%w: no events", ErrInvalidArgument)
	}
	for i := range events {
		e := &events[i]
		switch {
		case e.SagaID != sagaID:
			return fmt.Errorf("%w: event %d belongs to saga %q, not %q", ErrInvalidEvent, i, e.SagaID, sagaID)
		case !e.Type.Valid():
			return fmt.Errorf("%w: event %d has type %d", ErrInvalidEvent, i, uint8(e.Type))
		case e.Seq != last+1+uint64(i):
			return fmt.Errorf("%w: event %d has seq %d, want %d", ErrInvalidEvent, i, e.Seq, last+1+uint64(i))
		case (e.Seq == 1) != (e.Type == EventSagaStarted):
			return fmt.Errorf("%w: event %d: a log starts with, and only with, %v", ErrInvalidEvent, i, EventSagaStarted)
		case e.Type == EventSagaStarted && e.Definition == "":
			return fmt.Errorf("%w: event %d: %v without a definition name", ErrInvalidEvent, i, e.Type)
		case e.Type != EventSagaStarted && (e.Definition != "" || e.Version != 0):
			return fmt.Errorf("%w: event %d: only %v names the definition", ErrInvalidEvent, i, EventSagaStarted)
		case e.Run != events[0].Run:
			return fmt.Errorf("%w: event %d has run %q, not %q", ErrInvalidEvent, i, e.Run, events[0].Run)
		case e.Ends() && i != len(events)-1:
			return fmt.Errorf("%w: event %d ends the log but is not last", ErrInvalidEvent, i)
		}
	}
	return nil
}

// Claimer is implemented by stores that several processes share, each
// running a coordinator for the same definitions. Every unfinished instance
// is owned by one process at a time, or by none while it waits to be
// claimed; the store fences the writes of any other (Append fails with
// ErrFenced).
//
// With such a store a coordinator runs only the instances it owns: those
// it started and those Claim gives it, at Startup and then every
// Config.ClaimInterval. It spreads the work: a process that holds more than
// its share of a definition's unfinished instances (see Census) offers new
// ones to the others with Offer instead of running them, and each process
// claims only up to its share. At Shutdown it hands back the unfinished
// ones with Release and leaves the count with Leave, so that another
// process can claim them at once. A
// signal for an instance owned elsewhere is queued with Forward; the owner
// takes it from its Inbox at the same interval, records it, and removes it
// with Delivered.
type Claimer interface {
	Store

	// Offer stores a new instance as Create does, but owned by no process:
	// the first Claim for its definition takes it. It returns an error
	// wrapping ErrDuplicate if an instance with that saga ID exists.
	Offer(ctx context.Context, events []Event) error

	// Census counts the work on the named definition across the processes
	// that share the store, and records that this one runs the definition.
	// A process counts among Processes from its first census of the
	// definition until it calls Leave or its lease ends.
	Census(ctx context.Context, definition string) (Census, error)

	// Claim takes ownership of at most max unfinished instances of the
	// named definition that no live process owns (they were offered, their
	// owner stopped renewing its lease, or released them) and returns their
	// IDs, oldest first. Every write of the previous owner to them fails
	// from then on.
	Claim(ctx context.Context, definition string, max int) ([]string, error)

	// Release gives up ownership of the instances, which stay unfinished
	// for another process to claim. IDs this process does not own are
	// ignored.
	Release(ctx context.Context, sagaIDs []string) error

	// Leave records that this process no longer runs the named
	// definition, so that the others stop counting it in their shares.
	// The next Census for the definition counts it again. An empty name
	// is an ErrInvalidArgument.
	Leave(ctx context.Context, definition string) error

	// Forward queues a signal for whichever process owns its instance. It
	// returns an error wrapping ErrNotFound if there is no such instance
	// and ErrFinished if it has ended.
	Forward(ctx context.Context, s ForwardedSignal) error

	// Inbox returns at most max queued signals for the instances of
	// definition that this process owns, oldest first, including those
	// whose instance has ended since. They stay queued until Delivered
	// removes them.
	Inbox(ctx context.Context, definition string, max int) ([]ForwardedSignal, error)

	// Delivered removes the queued signals with these IDs.
	Delivered(ctx context.Context, ids []int64) error
}

// Census is a shared store's count of the work on one definition, from
// which each process works out its share: Unfinished / Processes, rounded
// up.
type Census struct {
	Processes  int // live processes that run the definition, the caller included
	Unfinished int // unfinished instances of the definition, stuck ones included
	Waiting    int // unfinished instances that no live process owns
}

// ForwardedSignal is a signal on its way to the process that owns its
// instance (see Claimer).
type ForwardedSignal struct {
	ID       int64  // given by the store when it is queued
	SagaID   string // the instance it is for
	Name     string
	Payload  []byte // empty or JSON
	DedupKey string
}
