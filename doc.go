// Package sagaflow is an embeddable saga engine for Go services.
//
// A saga is an ordered list of steps, each with an action and a
// compensation. sagaflow runs many instances of a saga at once inside the
// service's own process: it retries failed steps with backoff, trips circuit
// breakers when a downstream resource fails, keeps an event log per
// instance, resumes unfinished instances after a restart, and when a step
// gives up it undoes the completed steps in reverse order.
//
// Where to start:
//
//   - package [github.com/sagaflow/sagaflow/saga]: define a saga with
//     saga.NewDefinition and run it with saga.New; the package
//     documentation describes the model, the guarantees and the store
//     contract.
//   - package [github.com/sagaflow/sagaflow/saga/sagatest]: a harness for
//     testing sagas on a fake clock, and the conformance suite for stores.
//   - package [github.com/sagaflow/sagaflow/clock]: the clock the engine
//     runs on, and a deterministic fake for tests.
//   - examples/quickstart: go run ./examples/quickstart
//
// This package holds documentation only.
package sagaflow
