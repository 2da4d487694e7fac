package saga

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/sagaflow/sagaflow/clock"
)

// Config configures a [Coordinator]. The zero value works: a memory store,
// the real clock, slog's default logger and the defaults below.
type Config struct {
	// Store keeps the instances' logs. Defaults to a new MemoryStore that
	// the coordinator owns and closes at Shutdown; a store passed here
	// belongs to the caller, who closes it after Shutdown.
	Store Store

	// Clock times attempts, backoffs, deadlines and breakers. Defaults to
	// clock.Real(); tests pass a *clock.Fake.
	Clock clock.Clock

	// Logger receives the engine's logs; every line carries the saga_id.
	// Defaults to slog.Default().
	Logger *slog.Logger

	// Workers is the most actions and compensations running at once.
	// Instances waiting for a backoff or a signal do not hold a worker.
	// Defaults to 256; raise it when actions spend long waiting on I/O.
	// Lower it, to a few per processor, when actions do not wait (on
	// services in the same process): workers that never wait only queue
	// for the processors, and an instance whose worker is preempted
	// mid-step waits behind every one of them.
	Workers int

	// MaxInFlight is the most instances running at once (started and not
	// yet completed, compensated or stuck). Start beyond it returns
	// ErrOverloaded, or waits if WaitForCapacity is set. Defaults to
	// 10,000.
	MaxInFlight int

	// WaitForCapacity makes Start wait for a free slot until its context
	// ends, instead of returning ErrOverloaded at once. Defaults to false.
	WaitForCapacity bool

	// Breaker configures every circuit breaker. Defaults to 5 failures and
	// a 30s cool-down.
	Breaker BreakerPolicy

	// Rand returns random numbers in [0, 1) for backoff jitter. It is
	// called from many goroutines. Defaults to math/rand/v2's Float64.
	Rand func() float64

	// NewID makes IDs for instances started without WithID, and run IDs.
	// Defaults to random (version 4) UUIDs from a cryptographically strong
	// generator.
	NewID func() string

	// Hooks are called as the engine works, for metrics.
	Hooks Hooks

	// ClaimInterval is how often the coordinator asks a store that other
	// processes share (a [Claimer]) for instances nobody runs any more. It
	// bounds how long such an instance waits once its owner's lease has
	// expired or been released. Defaults to 1s; unused with other stores.
	ClaimInterval time.Duration
}

// Hooks let a caller count and time what the engine does. They are called
// synchronously on the engine's goroutines, so they must be fast, must not
// block, and must not call the coordinator.
type Hooks struct {
	// OnEvent is called for every event after it is stored, in log order
	// for each instance.
	OnEvent func(Event)
	// OnAttempt is called after every attempt of an action or compensation
	// with how long it ran (on the engine's clock) and its error (nil on
	// success).
	OnAttempt func(info StepInfo, elapsed time.Duration, err error)
}

func (c Config) withDefaults() (Config, error) {
	switch {
	case c.Workers < 0:
		return c, fmt.Errorf("%w: negative Workers", ErrInvalidArgument)
	case c.MaxInFlight < 0:
		return c, fmt.Errorf("%w: negative MaxInFlight", ErrInvalidArgument)
	case c.ClaimInterval < 0:
		return c, fmt.Errorf("%w: negative ClaimInterval", ErrInvalidArgument)
	case c.Breaker.Failures < 0 || c.Breaker.CoolDown < 0:
		return c, fmt.Errorf("%w: negative Breaker policy", ErrInvalidArgument)
	}
	if c.Clock == nil {
		c.Clock = clock.Real()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Workers == 0 {
		c.Workers = 256
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 10_000
	}
	if c.ClaimInterval == 0 {
		c.ClaimInterval = time.Second
	}
	c.Breaker = c.Breaker.withDefaults()
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	if c.NewID == nil {
		c.NewID = newUUID
	}
	return c, nil
}
