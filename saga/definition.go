package saga

import (
	"context"
	"math"
	"time"
)

// Action is what a step does, or undoes. It gets a context that carries the
// attempt's [StepInfo] and ends at the attempt's timeout, and a pointer to
// the instance's state, which it may read and change. It must return when
// ctx is done.
//
// An action may run more than once: it is retried after an error, and run
// again after a crash that came before its success was recorded. Side
// effects outside the process should therefore be keyed by
// Info(ctx).IdempotencyKey. If an attempt fails, changes it made to the
// state's fields are discarded (the next attempt sees the state as it was
// before); changes made through pointers, maps or slices inside the state
// are not, so do not rely on them.
type Action[S any] func(ctx context.Context, state *S) error

// Step is one step of a saga.
type Step[S any] struct {
	// Name identifies the step in events, logs and idempotency keys. It
	// must be unique within the definition and not empty.
	Name string

	// Action does the step's work. It is required.
	Action Action[S]

	// Compensate undoes Action after a later step failed, and after Action
	// itself gave up with an error that is not permanent: a timeout or a
	// transient failure leaves unknown whether Action took effect, so its
	// undo runs too. A compensation must therefore be idempotent and do
	// nothing when Action never took effect (the idempotency key tells
	// which). Optional: a step without one has nothing to undo. It should
	// not fail permanently: it is retried until CompensationRetry gives
	// up, and then the instance is stuck.
	Compensate Action[S]

	// Retry says how often and how fast Action is retried. Zero fields
	// take the definition's defaults (see WithRetry).
	Retry RetryPolicy

	// CompensationRetry says how often and how fast Compensate is
	// retried. Zero fields take the definition's defaults (see
	// WithCompensationRetry).
	CompensationRetry RetryPolicy

	// Timeout bounds each attempt of Action and of Compensate. Defaults to
	// 30 seconds.
	Timeout time.Duration

	// Breaker names the circuit breaker that guards this step's
	// downstream resource, such as "payment". Steps of any instance that
	// name the same breaker share it. Empty means no breaker.
	Breaker string

	// Signal, if set, makes the step wait for a signal of this name
	// (delivered with Coordinator.Signal) before Action runs. Action reads
	// the signal with SignalPayload(ctx). A signal delivered before the
	// step is reached is kept until then.
	Signal string

	// SignalTimeout bounds the wait for Signal; when it passes, the step
	// fails permanently with ErrSignalTimeout. Defaults to 0: wait until the
	// saga's deadline, if it has one.
	SignalTimeout time.Duration
}

// RetryPolicy says how a failed attempt is retried: after attempt n fails
// the engine waits InitialBackoff × Multiplier^(n-1), capped at MaxBackoff
// and scaled by a random factor in [1-Jitter, 1+Jitter] (still capped). All
// waits are on the engine's clock.
type RetryPolicy struct {
	// MaxAttempts is the number of attempts, the first included; 1 means
	// no retries. Defaults to 3 for actions and 10 for compensations.
	MaxAttempts int
	// InitialBackoff is the wait after the first failed attempt. Defaults
	// to 100ms.
	InitialBackoff time.Duration
	// MaxBackoff caps every wait. Defaults to 10s for actions and 1m for
	// compensations.
	MaxBackoff time.Duration
	// Multiplier is how much each wait grows. Defaults to 2.
	Multiplier float64
	// Jitter spreads waits by this fraction so that instances that failed
	// together do not retry together. Defaults to 0.2; a negative value
	// means none.
	Jitter float64
}

func (p RetryPolicy) withDefaults(d RetryPolicy) RetryPolicy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = d.MaxAttempts
	}
	if p.InitialBackoff == 0 {
		p.InitialBackoff = d.InitialBackoff
	}
	if p.MaxBackoff == 0 {
		p.MaxBackoff = d.MaxBackoff
	}
	if p.Multiplier == 0 {
		p.Multiplier = d.Multiplier
	}
	if p.Jitter == 0 {
		p.Jitter = d.Jitter
	}
	return p
}

func (p RetryPolicy) check() string {
	switch {
	case p.MaxAttempts < 0:
		return "retry: MaxAttempts is negative"
	case p.InitialBackoff < 0 || p.MaxBackoff < 0:
		return "retry: negative backoff"
	case p.Multiplier < 0 || math.IsNaN(p.Multiplier) || math.IsInf(p.Multiplier, 0):
		return "retry: Multiplier must be a finite number >= 1"
	case p.Multiplier != 0 && p.Multiplier < 1:
		return "retry: Multiplier must be >= 1"
	case p.Jitter > 1 || math.IsNaN(p.Jitter):
		return "retry: Jitter must be at most 1"
	}
	return ""
}

var (
	defaultRetry = RetryPolicy{
		MaxAttempts:    3,
		InitialBackoff: 100 * time.Millisecond,
		MaxBackoff:     10 * time.Second,
		Multiplier:     2,
		Jitter:         0.2,
	}
	defaultCompensationRetry = RetryPolicy{
		MaxAttempts:    10,
		InitialBackoff: 100 * time.Millisecond,
		MaxBackoff:     time.Minute,
		Multiplier:     2,
		Jitter:         0.2,
	}
	defaultStepTimeout = 30 * time.Second
)

// Definition is a validated, immutable saga: a name, a version and ordered
// steps. Build one with NewDefinition; it is safe to share between
// goroutines and coordinators.
type Definition[S any] struct {
	name    string
	version int
	timeout time.Duration
	steps   []Step[S] // with every default filled in
}

// DefinitionOption sets an optional property of a definition.
type DefinitionOption func(*definitionOptions)

type definitionOptions struct {
	version           int
	timeout           time.Duration
	retry             RetryPolicy
	compensationRetry RetryPolicy
}

// WithVersion sets the definition's version, recorded in every instance's
// first event. Defaults to 1.
func WithVersion(v int) DefinitionOption {
	return func(o *definitionOptions) { o.version = v }
}

// WithTimeout sets the saga deadline: an instance that has not completed
// this long after it started stops retrying and compensates. Defaults to
// 0: no deadline. Start can override it per instance.
func WithTimeout(d time.Duration) DefinitionOption {
	return func(o *definitionOptions) { o.timeout = d }
}

// WithRetry sets the retry policy of steps whose Retry leaves fields zero.
func WithRetry(p RetryPolicy) DefinitionOption {
	return func(o *definitionOptions) { o.retry = p }
}

// WithCompensationRetry sets the compensation retry policy of steps whose
// CompensationRetry leaves fields zero.
func WithCompensationRetry(p RetryPolicy) DefinitionOption {
	return func(o *definitionOptions) { o.compensationRetry = p }
}

// NewDefinition validates a saga and returns its definition. It returns a
// *DefinitionError (wrapping ErrInvalidDefinition) when the name is empty,
// there are no steps, a step has an empty or duplicate name or no Action,
// or a duration or policy is out of range.
func NewDefinition[S any](name string, steps []Step[S], opts ...DefinitionOption) (*Definition[S], error) {
	o := definitionOptions{version: 1}
	for _, opt := range opts {
		opt(&o)
	}
	bad := func(step int, reason string) (*Definition[S], error) {
		return nil, &DefinitionError{Definition: name, Step: step, Reason: reason}
	}
	switch {
	case name == "":
		return bad(-1, "empty name")
	case len(steps) == 0:
		return bad(-1, "no steps")
	case o.version < 0:
		return bad(-1, "negative version")
	case o.timeout < 0:
		return bad(-1, "negative timeout")
	}
	if r := o.retry.check(); r != "" {
		return bad(-1, r)
	}
	if r := o.compensationRetry.check(); r != "" {
		return bad(-1, r)
	}
	retry := o.retry.withDefaults(defaultRetry)
	compRetry := o.compensationRetry.withDefaults(defaultCompensationRetry)

	d := &Definition[S]{name: name, version: o.version, timeout: o.timeout, steps: make([]Step[S], len(steps))}
	seen := make(map[string]bool, len(steps))
	for i, s := range steps {
		switch {
		case s.Name == "":
			return bad(i, "empty name")
		case seen[s.Name]:
			return bad(i, "duplicate name "+s.Name)
		case s.Action == nil:
			return bad(i, s.Name+": nil Action")
		case s.Timeout < 0:
			return bad(i, s.Name+": negative Timeout")
		case s.SignalTimeout < 0:
			return bad(i, s.Name+": negative SignalTimeout")
		case s.SignalTimeout > 0 && s.Signal == "":
			return bad(i, s.Name+": SignalTimeout without Signal")
		}
		if r := s.Retry.check(); r != "" {
			return bad(i, s.Name+": "+r)
		}
		if r := s.CompensationRetry.check(); r != "" {
			return bad(i, s.Name+": compensation "+r)
		}
		seen[s.Name] = true
		s.Retry = s.Retry.withDefaults(retry)
		s.CompensationRetry = s.CompensationRetry.withDefaults(compRetry)
		if s.Timeout == 0 {
			s.Timeout = defaultStepTimeout
		}
		d.steps[i] = s
	}
	return d, nil
}

// Name returns the definition's name.
func (d *Definition[S]) Name() string { return d.name }

// Version returns the definition's version.
func (d *Definition[S]) Version() int { return d.version }

// Timeout returns the saga deadline instances get by default, 0 for none.
func (d *Definition[S]) Timeout() time.Duration { return d.timeout }

// Steps returns the step names in order.
func (d *Definition[S]) Steps() []string {
	names := make([]string, len(d.steps))
	for i, s := range d.steps {
		names[i] = s.Name
	}
	return names
}

// Step returns the named step with every default filled in, and whether it
// exists.
func (d *Definition[S]) Step(name string) (Step[S], bool) {
	if i := d.stepIndex(name); i >= 0 {
		return d.steps[i], true
	}
	return Step[S]{}, false
}

func (d *Definition[S]) stepIndex(name string) int {
	for i := range d.steps {
		if d.steps[i].Name == name {
			return i
		}
	}
	return -1
}
