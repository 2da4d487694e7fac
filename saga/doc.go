// Package saga is sagaflow's engine: saga definitions, the coordinator that
// runs their instances, the event log, and the store contract.
//
// # Model
//
// A [Definition] is a name, a version and ordered steps. Each [Step] has an
// [Action], an optional compensation, a [RetryPolicy], a per-attempt
// timeout, optionally the name of a circuit breaker it shares with other
// steps, and optionally a signal it waits for. NewDefinition rejects an
// invalid saga with a [*DefinitionError].
//
// A [Coordinator] runs the instances of one definition. Each instance has an
// ID, a state value of type S (encoded as JSON in the log), a [Status] and an
// event log. Every change is an [Event] appended to the log with the next
// sequence number before the engine acts on it; an instance's status,
// current step and state are a fold of its log, so [Coordinator.Get] and
// recovery read the same truth.
//
// Statuses move pending → running → completed, or running → compensating →
// compensated, or compensating → stuck when a compensation keeps failing
// past its limit; [Coordinator.Retry] moves a stuck instance back to
// compensating. Any other transition is refused.
//
// # Running a step
//
// Each attempt runs with a context that ends at the step's timeout (and the
// saga deadline, on the engine's clock) and carries a [StepInfo]: the saga
// ID, the step, the attempt number and the idempotency key
// "<sagaID>/<step>", which is stable across retries and restarts so that
// downstream services can deduplicate side effects.
//
// An error is retried with exponential backoff and jitter up to the
// policy's attempts; an error wrapped with [Permanent] gives up at once; a
// panic is recovered into a [*PanicError] and counts as a failed attempt.
// When a step gives up, or the saga deadline passes, the compensations of
// the completed steps run newest first, each retried with capped backoff;
// when the step gave up with an error that is not permanent (a timeout, a
// transient failure), its own compensation runs first, since its action may
// have taken effect;
// past its limit the instance is stuck and reported by Health rather than
// silently abandoned.
//
// A circuit breaker opens after consecutive failures of the steps that name
// it, fails attempts fast while open without spending their retries, and
// lets one probe through after a cool-down. A step with Signal set waits for
// [Coordinator.Signal]; duplicate deliveries (same dedup key) are ignored,
// early ones are kept until the step waits, and the wait can time out.
//
// # Guarantees
//
//   - Once Start returns nil the instance is in the store (and survives a
//     crash with a durable store).
//   - An action whose success is recorded never runs again; an action
//     interrupted before its outcome was recorded runs again, with the same
//     idempotency key, when the instance resumes.
//   - Starting an ID that exists returns [ErrDuplicate]; there is never a
//     second instance.
//   - Every instance ends completed, compensated or stuck.
//   - Appends are atomic and conditional on the expected sequence number, so
//     two writers cannot interleave a log.
//   - After Shutdown returns, no goroutine or timer of the coordinator is
//     left.
//   - At most Config.MaxInFlight instances run at once; Start beyond that
//     returns [ErrOverloaded] (or waits, if configured). A [MemoryStore] can
//     drop finished instances by age or count to keep memory bounded.
//
// # Stores
//
// A [Store] keeps the logs. [MemoryStore] is the default and the reference;
// every store passes the conformance suite in package sagatest.
//
// # Observing
//
// [Coordinator.Subscribe] delivers events as they are stored; a slow
// subscriber loses events (and learns how many) rather than slowing the
// engine. Logs go through log/slog with the saga_id attribute on every line.
// [Hooks] let a caller count and time events and attempts. Health reports the
// coordinator's state, counts, breakers, stuck instances and store status.
package saga
