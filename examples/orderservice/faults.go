package main

import (
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/sagaflow/sagaflow/orderflow"
	"github.com/sagaflow/sagaflow/saga"
)

// Failure modes a request may ask for with fail_mode.
const (
	// modeRefused: the service refuses with a permanent error. The step
	// did nothing, so the undo starts with the steps before it.
	modeRefused = "refused"
	// modeUnavailable: every attempt fails with a transient error, the
	// step gives up after its retries, and its own undo runs first,
	// since nobody knows whether it took effect.
	modeUnavailable = "unavailable"
)

// failure is a fault a request asks to inject into its own order.
type failure struct {
	step string // orderflow.StepPayment, StepInventory or StepShipping
	mode string // modeRefused or modeUnavailable
}

// faultStep is a step a failure can be injected at: its operation, as
// orderflow.Fault names it, and the refusal it gets in modeRefused.
type faultStep struct {
	step, op string
	refusal  string
}

// faultSteps are the steps a failure can be injected at.
var faultSteps = []faultStep{
	{orderflow.StepPayment, "charge", "card declined (injected fault)"},
	{orderflow.StepInventory, "reserve", "out of stock (injected fault)"},
	{orderflow.StepShipping, "ship", "no courier serves this address (injected fault)"},
}

// injector is a service that takes injected faults, as the bundled ones
// do through their embedded orderflow.Faults.
type injector interface {
	Inject(f orderflow.Fault) (remove func())
}

// injectedError is the transient error of modeUnavailable.
type injectedError struct{ msg string }

func (e *injectedError) Error() string { return e.msg }
func (e *injectedError) Unwrap() error { return orderflow.ErrUnavailable }

// parseFault reads fail_step and fail_mode from the query; nil if the
// request asks for no failure.
func (s *server) parseFault(r *http.Request) (*failure, error) {
	q := r.URL.Query()
	f := &failure{step: q.Get("fail_step"), mode: q.Get("fail_mode")}
	switch f.mode {
	case "":
		f.mode = modeRefused
	case modeRefused, modeUnavailable:
	default:
		return nil, fmt.Errorf("fail_mode %q: want %s or %s", f.mode, modeRefused, modeUnavailable)
	}
	if f.step == "" {
		if q.Has("fail_mode") {
			return nil, errors.New("fail_mode needs fail_step")
		}
		return nil, nil
	}
	if findFaultStep(f.step) < 0 {
		return nil, fmt.Errorf("fail_step %q: want %s, %s or %s", f.step, faultSteps[0].step, faultSteps[1].step, faultSteps[2].step)
	}
	if _, ok := s.service(f.step).(injector); !ok {
		return nil, fmt.Errorf("fail_step %q: the %s service takes no injected faults", f.step, f.step)
	}
	return f, nil
}

// findFaultStep returns the index of step in faultSteps, or -1.
func findFaultStep(step string) int {
	return slices.IndexFunc(faultSteps, func(fs faultStep) bool { return fs.step == step })
}

// service returns the System's service behind a step.
func (s *server) service(step string) any {
	switch step {
	case orderflow.StepPayment:
		return s.sys.Payment()
	case orderflow.StepInventory:
		return s.sys.Inventory()
	case orderflow.StepShipping:
		return s.sys.Shipping()
	}
	return nil
}

// injectFault injects f for order id, unless f is nil or the order exists
// already (a repeated request must not change it), and returns the function
// that removes it.
func (s *server) injectFault(r *http.Request, id string, f *failure) (remove func()) {
	if f == nil {
		return func() {}
	}
	if _, err := s.sys.GetStatus(r.Context(), id); err == nil {
		return func() {}
	}
	i := findFaultStep(f.step)
	fault := orderflow.Fault{Op: faultSteps[i].op, OrderID: id}
	if f.mode == modeRefused {
		fault.Times = 1
		fault.Err = saga.Permanent(errors.New(faultSteps[i].refusal))
	} else {
		fault.Err = &injectedError{f.step + " service unavailable (injected fault)"}
	}
	return s.service(f.step).(injector).Inject(fault)
}

// removeWhenSettled calls remove once order id has settled, or when the
// server closes, so that no fault outlives its order.
func (s *server) removeWhenSettled(id string, remove func()) {
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	if s.ctx.Err() != nil {
		remove()
		return
	}
	s.bg.Go(func() {
		defer remove()
		_, _ = s.sys.Wait(s.ctx, id)
	})
}
