package saga

import (
	"context"
	"encoding/json"
)

// StepInfo describes the attempt an action or compensation is running in.
type StepInfo struct {
	SagaID string
	Step   string
	// Attempt counts the attempts of this action (or of this compensation),
	// from 1. An attempt interrupted by a crash is run again with the same
	// number.
	Attempt int
	// IdempotencyKey is "<sagaID>/<step>": the same for every attempt of
	// the step and its compensation, across retries, restarts and
	// processes. Downstream services deduplicate side effects by it.
	IdempotencyKey string
	// Compensating is true when the attempt runs the step's compensation.
	Compensating bool
}

// stepContext is an attempt's StepInfo, kept small, and the payload of the
// signal its step waited for. The saga ID and the step's name are the two
// parts of the idempotency key.
type stepContext struct {
	key          string // the idempotency key, "<sagaID>/<step>"
	attempt      int
	idLen        int32 // the saga ID's length in key
	compensating bool
	signal       *json.RawMessage // the payload of the signal the step waited for, if it did
}

// info returns the StepInfo of sc.
func (sc *stepContext) info() StepInfo {
	return StepInfo{
		SagaID:         sc.key[:sc.idLen],
		Step:           sc.key[sc.idLen+1:],
		Attempt:        sc.attempt,
		IdempotencyKey: sc.key,
		Compensating:   sc.compensating,
	}
}

type stepContextKey struct{}

// Info returns the StepInfo of the attempt that ctx belongs to, and false
// when ctx does not come from the engine.
func Info(ctx context.Context) (StepInfo, bool) {
	sc, ok := ctx.Value(stepContextKey{}).(*stepContext)
	if !ok {
		return StepInfo{}, false
	}
	return sc.info(), true
}

// SignalPayload returns the payload of the signal a step waited for (see
// Step.Signal), and false when the step does not wait for a signal.
func SignalPayload(ctx context.Context) (json.RawMessage, bool) {
	sc, ok := ctx.Value(stepContextKey{}).(*stepContext)
	if !ok || sc.signal == nil {
		return nil, false
	}
	return *sc.signal, true
}

// IdempotencyKey returns the idempotency key of a saga's step.
func IdempotencyKey(sagaID, step string) string { return sagaID + "/" + step }
