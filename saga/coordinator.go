package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sagaflow/sagaflow/clock"
)

// Coordinator runs the instances of one saga definition: it starts them,
// advances each one step at a time on a bounded pool of workers, retries,
// compensates, and records every change in the store before acting on it.
// All methods are safe for concurrent use.
//
// A coordinator's life is New, Startup, any number of calls, Shutdown. It
// cannot be started again after Shutdown.
type Coordinator[S any] struct {
	def       *Definition[S]
	cfg       Config
	store     Store
	claimer   Claimer      // the store, if other processes share it
	mem       *MemoryStore // the store, if it is a memory store: see append
	ownsStore bool
	clock     clock.Clock
	log       *slog.Logger
	breakers  []*breaker          // by step index; nil for steps without one
	byName    map[string]*breaker // by breaker name
	hub       hub

	// Start, Retry and Signal hold life shared, Startup and Shutdown
	// exclusively. Holding it shared writes it, so it has a cache line of
	// its own: beside the hub, whose subscriber count each event reads,
	// every order that loadgen's placers started made its workers miss
	// that line about ten times (hub.publish, all but one read of which
	// is that count: 2.1 -> 0.2% of loadgen's CPU).
	_    [64]byte
	life sync.RWMutex
	_    [64]byte

	phase    atomic.Int32
	stopping chan struct{} // closed when Shutdown begins
	stopOnce sync.Once

	slots     chan struct{}     // one token per in-flight instance that counts against MaxInFlight
	ready     chan *instance[S] // instances waiting for a worker
	quit      chan struct{}     // closed to stop the workers
	halted    atomic.Bool       // set when no instance may be advanced any more
	runCtx    context.Context   // parent of every attempt; cancelled to abandon them
	attempts  attemptEnv        // runCtx and the clock, for every attempt
	cancelRun context.CancelFunc
	workers   sync.WaitGroup

	live    *registry[S] // running instances
	stuck   *registry[S] // stuck instances, waiting for Retry
	sharing sharing      // the work across processes, with a Claimer

	drainMu sync.Mutex
	drained chan struct{} // closed once stopping and no instance is live

	completed     atomic.Int64
	compensated   atomic.Int64
	recovered     atomic.Int64
	unrecoverable atomic.Int64
}

// Lifecycle phases of a coordinator.
const (
	phaseNew int32 = iota
	phaseRunning
	phaseStopping
	phaseStopped
)

// New returns a coordinator for def. It validates cfg (see Config) and
// returns an error wrapping ErrInvalidArgument if a field is out of range.
// Nothing runs until Startup.
func New[S any](def *Definition[S], cfg Config) (*Coordinator[S], error) {
	if def == nil {
		return nil, fmt.Errorf("%w: nil definition", ErrInvalidArgument)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Coordinator[S]{
		def:      def,
		cfg:      cfg,
		store:    cfg.Store,
		clock:    cfg.Clock,
		log:      cfg.Logger,
		breakers: make([]*breaker, len(def.steps)),
		byName:   make(map[string]*breaker),
		stopping: make(chan struct{}),
		quit:     make(chan struct{}),
		live:     newRegistry[S](),
		stuck:    newRegistry[S](),
		drained:  make(chan struct{}),
	}
	c.sharing.room = make(chan struct{}, 1)
	if c.store == nil {
		c.store = NewMemoryStore(MemoryConfig{Clock: cfg.Clock})
		c.ownsStore = true
	}
	c.claimer, _ = c.store.(Claimer)
	c.mem, _ = c.store.(*MemoryStore)
	for i, s := range def.steps {
		if s.Breaker == "" {
			continue
		}
		b, ok := c.byName[s.Breaker]
		if !ok {
			b = newBreaker(cfg.Breaker)
			c.byName[s.Breaker] = b
		}
		c.breakers[i] = b
	}
	c.runCtx, c.cancelRun = context.WithCancel(context.Background())
	c.attempts = attemptEnv{parent: c.runCtx, clock: c.clock}
	return c, nil
}

// Definition returns the definition the coordinator runs.
func (c *Coordinator[S]) Definition() *Definition[S] { return c.def }

// Store returns the store the coordinator writes to.
func (c *Coordinator[S]) Store() Store { return c.store }

// Startup checks the store, resumes every unfinished instance of the
// definition from where its log stops, and starts the workers. With a store
// that other processes share (a [Claimer]), it resumes only the instances
// it claims, and keeps claiming those whose owner has gone. A step that
// was started but not recorded as done runs again, with the same
// idempotency key; a compensation in progress continues; a scheduled retry
// waits for its recorded time; stuck instances stay stuck. A log that
// cannot be read back is logged and skipped, and reported by Health. If
// Startup fails after it claimed instances of a shared store, it hands
// them back, so that other processes need not wait for its lease.
func (c *Coordinator[S]) Startup(ctx context.Context) error {
	c.life.Lock()
	defer c.life.Unlock()
	switch c.phase.Load() {
	case phaseRunning:
		return fmt.Errorf("%w: Startup called twice", ErrInvalidArgument)
	case phaseStopping, phaseStopped:
		return ErrStopped
	}
	if err := c.store.Ping(ctx); err != nil {
		return fmt.Errorf("saga: store: %w", err)
	}
	var ids []string
	var err error
	c.slots = make(chan struct{}, c.cfg.MaxInFlight)
	if c.claimer != nil {
		if err := c.census(ctx); err != nil {
			return fmt.Errorf("saga: count the work across processes: %w", err)
		}
		ids, err = c.claimer.Claim(ctx, c.def.name, c.claimLimit())
	} else {
		ids, err = c.store.Unfinished(ctx, c.def.name)
	}
	if err != nil {
		err = fmt.Errorf("saga: list unfinished instances: %w", err)
		if c.claimer != nil { // it counted in the census
			err = errors.Join(err, c.handBack(ctx, nil))
		}
		return err
	}
	found, err := c.recover(ctx, ids)
	if err != nil {
		if c.claimer != nil { // what it claimed would wait for its lease
			err = errors.Join(err, c.handBack(ctx, ids))
		}
		return err
	}

	c.ready = make(chan *instance[S], c.cfg.MaxInFlight+len(found))
	resumed := 0
	for _, inst := range found {
		if c.admit(inst) {
			c.ready <- inst
			resumed++
		}
	}
	c.recovered.Add(int64(resumed))
	c.workers.Add(c.cfg.Workers)
	for range c.cfg.Workers {
		go c.work()
	}
	if c.claimer != nil {
		c.workers.Add(1)
		go c.claimLoop()
	}
	c.phase.Store(phaseRunning)
	if n := c.unrecoverable.Load(); resumed > 0 || c.stuck.len() > 0 || n > 0 {
		c.log.LogAttrs(ctx, slog.LevelInfo, "saga: recovered instances",
			slog.String("definition", c.def.name), slog.Int("resumed", resumed),
			slog.Int("stuck", c.stuck.len()), slog.Int64("unrecoverable", n))
	}
	return nil
}

// releaseTimeout bounds how long Shutdown tries to hand back instances to
// a shared store.
const releaseTimeout = 5 * time.Second

// handBack tells a shared store that this process no longer runs the
// definition and gives back the instances it owned, within releaseTimeout
// even when ctx has ended: handing back is what lets another process take
// over now rather than after the lease.
func (c *Coordinator[S]) handBack(ctx context.Context, owned []string) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	err := c.claimer.Leave(rctx, c.def.name)
	if len(owned) > 0 {
		err = errors.Join(err, c.claimer.Release(rctx, owned))
	}
	return err
}

// recover loads and folds the logs of ids. A log that cannot be folded is
// logged, counted and skipped.
func (c *Coordinator[S]) recover(ctx context.Context, ids []string) ([]*instance[S], error) {
	var found []*instance[S]
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		events, err := c.store.Load(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("saga: recover %q: %w", id, err)
		}
		p, err := fold(c.def, events)
		if err != nil {
			c.unrecoverable.Add(1)
			c.log.LogAttrs(ctx, slog.LevelError, "saga: cannot recover instance",
				slog.String("saga_id", id), slog.Any("error", err))
			continue
		}
		found = append(found, &instance[S]{progress: p})
	}
	return found, nil
}

// admit takes charge of a recovered instance and reports whether it is to
// be resumed: a stuck one waits for Retry, the others become live, with an
// in-flight slot if one is free (recovered instances are taken even beyond
// capacity, and Start waits for them).
func (c *Coordinator[S]) admit(inst *instance[S]) bool {
	if inst.status == StatusStuck {
		c.stuck.add(inst.id, inst)
		return false
	}
	select {
	case c.slots <- struct{}{}:
		inst.slotted = true
	default:
	}
	c.live.add(inst.id, inst)
	return true
}

// Shutdown stops the coordinator. It refuses new instances at once, then:
//
//   - with a store that is not durable, waits for every running instance to
//     complete, compensate or get stuck, until ctx ends;
//   - with a durable store, waits only for the attempts already running,
//     until ctx ends; unfinished instances resume at the next Startup.
//
// When ctx ends first, running attempts are cancelled. Either way, when
// Shutdown returns no goroutine or timer of the coordinator is left, every
// subscription is closed, and the store is closed if the coordinator
// created it. With a store that is not durable, Shutdown returns an
// *UnfinishedError listing the instances that had not ended. Calling it
// again does nothing.
func (c *Coordinator[S]) Shutdown(ctx context.Context) error {
	// Wake Starts and Retries waiting for capacity first: they hold the
	// lifecycle lock shared, and Shutdown needs it exclusively.
	c.stopOnce.Do(func() { close(c.stopping) })
	c.life.Lock()
	switch c.phase.Load() {
	case phaseNew:
		c.phase.Store(phaseStopped)
		c.life.Unlock()
		c.cancelRun()
		c.hub.close()
		return c.closeStore()
	case phaseStopping, phaseStopped:
		c.life.Unlock()
		return nil
	}
	c.phase.Store(phaseStopping)
	c.life.Unlock()

	durable := c.store.Durable()
	if !durable {
		c.checkDrained()
		select {
		case <-c.drained:
		case <-ctx.Done():
		}
	}

	// Advance nothing more; stop the timers of parked instances.
	c.halted.Store(true)
	c.live.each(func(inst *instance[S]) {
		inst.mu.Lock()
		if inst.timer != nil {
			inst.timer.Stop()
			inst.timer = nil
		}
		inst.mu.Unlock()
	})

	// Let running attempts finish until ctx ends, then cancel them.
	close(c.quit)
	idle := make(chan struct{})
	go func() {
		c.workers.Wait()
		close(idle)
	}()
	select {
	case <-idle:
	case <-ctx.Done():
		c.cancelRun()
		<-idle
	}
	c.cancelRun()
	c.hub.close()

	var unfinished []string
	c.live.each(func(inst *instance[S]) { unfinished = append(unfinished, inst.id) })
	slices.Sort(unfinished)
	var released error
	if c.claimer != nil {
		owned := slices.Clone(unfinished)
		c.stuck.each(func(inst *instance[S]) { owned = append(owned, inst.id) })
		released = c.handBack(ctx, owned)
	}
	// Wait out any Signal still appending before the store closes.
	c.life.Lock()
	c.phase.Store(phaseStopped)
	c.life.Unlock()

	err := errors.Join(released, c.closeStore())
	if len(unfinished) > 0 {
		if durable {
			c.log.LogAttrs(ctx, slog.LevelInfo, "saga: instances will resume at next startup",
				slog.String("definition", c.def.name), slog.Int("unfinished", len(unfinished)))
		} else {
			err = errors.Join(&UnfinishedError{IDs: unfinished}, err)
		}
	}
	return err
}

func (c *Coordinator[S]) closeStore() error {
	if !c.ownsStore {
		return nil
	}
	return c.store.Close()
}

// checkDrained closes drained once Shutdown has begun and no instance is
// live. Both Shutdown and finish call it, so neither misses the moment.
func (c *Coordinator[S]) checkDrained() {
	if c.phase.Load() < phaseStopping || c.live.len() > 0 {
		return
	}
	c.drainMu.Lock()
	defer c.drainMu.Unlock()
	select {
	case <-c.drained:
	default:
		close(c.drained)
	}
}

// running returns nil if the coordinator takes new work, else why not.
func (c *Coordinator[S]) running() error {
	switch c.phase.Load() {
	case phaseNew:
		return ErrNotStarted
	case phaseRunning:
		return nil
	}
	return ErrStopped
}

// StartOption sets an optional property of one instance.
type StartOption func(*startOptions)

type startOptions struct {
	id       string
	idSet    bool
	deadline time.Time
}

// WithID makes Start use id instead of generating one. Starting an ID that
// exists fails with ErrDuplicate; use this to make submissions idempotent.
func WithID(id string) StartOption {
	return func(o *startOptions) { o.id, o.idSet = id, true }
}

// WithDeadline sets the instance's saga deadline, overriding the
// definition's WithTimeout.
func WithDeadline(t time.Time) StartOption {
	return func(o *startOptions) { o.deadline = t }
}

// Start creates an instance with the given initial state and schedules its
// first step; it returns the instance's ID as soon as the instance is
// stored. Once Start returns nil the instance exists in the store.
//
// With a store that other processes share (a [Claimer]), a process that
// holds more than its share of the definition's unfinished instances
// offers the new one to the others instead (Claimer.Offer), and the first
// with room below its share claims it within its ClaimInterval.
//
// Start returns an error wrapping ErrDuplicate if the ID exists (no second
// instance is ever created: use Get to read the existing one),
// ErrOverloaded when MaxInFlight instances are running,
// ErrInvalidArgument for an empty ID or a state that does not encode as
// JSON, and ErrNotStarted or ErrStopped outside Startup and Shutdown.
func (c *Coordinator[S]) Start(ctx context.Context, state S, opts ...StartOption) (string, error) {
	var o startOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.idSet && o.id == "" {
		return "", fmt.Errorf("%w: empty saga ID", ErrInvalidArgument)
	}
	// Encode the instance's own copy: encoding state itself would move it
	// to the heap as well.
	inst := new(instance[S]) // not a literal, which would be built in Start's stack frame first
	inst.init(c.def)
	inst.slotted = true
	inst.state = state
	raw, err := c.encodeState(inst, &inst.state)
	if err == nil && !validJSON(raw) { // once per instance: its encoder is trusted after this
		err = errors.New("not valid JSON")
	}
	if err != nil {
		return "", fmt.Errorf("%w: encode state: %w", ErrInvalidArgument, err)
	}

	c.life.RLock()
	defer c.life.RUnlock()
	if err := c.running(); err != nil {
		return "", err
	}
	id := o.id
	if !o.idSet {
		id = c.cfg.NewID()
	}
	if c.shouldOffer() {
		if err := c.offer(ctx, inst, id, raw, o.deadline); err != nil {
			return "", err
		}
		return id, nil
	}
	if err := c.acquire(ctx); err != nil {
		return "", err
	}

	now := c.clock.Now()
	inst.id, inst.run = id, c.cfg.NewID()
	batch := getBatch()
	events := c.startEvents(*batch, raw, o.deadline, now)
	defer putBatch(batch, events)

	inst.mu.Lock()
	if !c.live.add(id, inst) {
		inst.mu.Unlock()
		c.release()
		return "", fmt.Errorf("%w: %q", ErrDuplicate, id)
	}
	c.stamp(inst, events, now)
	err = c.create(ctx, inst, events)
	inst.releaseScratch()
	if err != nil {
		c.live.remove(id)
		inst.mu.Unlock()
		c.release()
		return "", err
	}
	c.applyRecorded(inst, events)
	inst.mu.Unlock()

	c.ready <- inst
	return id, nil
}

// startEvents appends to dst the first events of a new instance: it
// starts, and so does its first step.
func (c *Coordinator[S]) startEvents(dst []Event, raw []byte, deadline, now time.Time) []Event {
	if deadline.IsZero() && c.def.timeout > 0 {
		deadline = now.Add(c.def.timeout)
	}
	return append(dst,
		Event{Type: EventSagaStarted, State: raw, Definition: c.def.name, Version: c.def.version, At: deadline},
		Event{Type: EventStepStarted, Step: c.def.steps[0].Name, Attempt: 1})
}

// acquire takes an in-flight slot, waiting for one if so configured.
func (c *Coordinator[S]) acquire(ctx context.Context) error {
	select {
	case c.slots <- struct{}{}:
		return nil
	default:
	}
	if !c.cfg.WaitForCapacity {
		return fmt.Errorf("%w: %d instances in flight", ErrOverloaded, c.cfg.MaxInFlight)
	}
	select {
	case c.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrOverloaded, ctx.Err())
	case <-c.stopping:
		return ErrStopped
	}
}

// release frees an in-flight slot, and tells the claim loop of the room.
func (c *Coordinator[S]) release() {
	<-c.slots
	c.roomFreed()
}

// Get returns the instance's current snapshot, read back from the store. It
// returns an error wrapping ErrNotFound if no instance of this definition
// has that ID.
func (c *Coordinator[S]) Get(ctx context.Context, sagaID string) (Snapshot[S], error) {
	events, err := c.Events(ctx, sagaID)
	if err != nil {
		return Snapshot[S]{}, err
	}
	p, err := fold(c.def, events)
	if err != nil {
		return Snapshot[S]{}, fmt.Errorf("saga: read %q: %w", sagaID, err)
	}
	return p.snapshot(), nil
}

// Events returns the instance's log in order. It returns an error wrapping
// ErrNotFound if no instance of this definition has that ID.
func (c *Coordinator[S]) Events(ctx context.Context, sagaID string) ([]Event, error) {
	if sagaID == "" {
		return nil, fmt.Errorf("%w: empty saga ID", ErrInvalidArgument)
	}
	events, err := c.store.Load(ctx, sagaID)
	if err != nil {
		return nil, err
	}
	if len(events) == 0 || events[0].Definition != c.def.name {
		return nil, fmt.Errorf("%w: %q is not a %s saga", ErrNotFound, sagaID, c.def.name)
	}
	return events, nil
}

// Subscribe returns a subscription to the events the coordinator appends
// from now on. Close it when done; Shutdown closes it too.
func (c *Coordinator[S]) Subscribe(opts SubscribeOptions) *Subscription {
	if opts.Buffer <= 0 {
		opts.Buffer = 256
	}
	s := &Subscription{hub: &c.hub, sagaID: opts.SagaID, ch: make(chan Event, opts.Buffer)}
	if !c.hub.add(s) {
		s.closed = true
		close(s.ch)
	}
	return s
}

// Signal delivers an external event to a running or stuck instance. The
// signal is recorded in the instance's log before Signal returns; a step
// that waits for that name (Step.Signal) consumes it now or when the saga
// gets there. A signal with a dedupKey that the instance has already
// received is ignored and Signal returns nil; an empty dedupKey never
// matches. The payload must be empty or valid JSON.
//
// With a store that other processes share (a [Claimer]), a signal for an
// instance that another process owns is queued for that process, which
// records it within its ClaimInterval; Signal returns once it is queued. A
// forwarded signal without a dedupKey is given one, so that it is recorded
// once even if its delivery is repeated.
//
// Signal returns an error wrapping ErrFinished if the instance has ended,
// ErrNotFound if it does not exist, ErrInvalidArgument for an empty ID or
// name or a payload that is not JSON, and ErrStopped after Shutdown.
func (c *Coordinator[S]) Signal(ctx context.Context, sagaID, name string, payload []byte, dedupKey string) error {
	return c.signal(ctx, sagaID, name, payload, dedupKey, true)
}

// signal records a signal for an instance this coordinator runs; with
// forward set, one for an instance another process owns is queued for it.
func (c *Coordinator[S]) signal(ctx context.Context, sagaID, name string, payload []byte, dedupKey string, forward bool) error {
	switch {
	case sagaID == "":
		return fmt.Errorf("%w: empty saga ID", ErrInvalidArgument)
	case name == "":
		return fmt.Errorf("%w: empty signal name", ErrInvalidArgument)
	case len(payload) > 0 && !json.Valid(payload):
		return fmt.Errorf("%w: signal payload is not JSON", ErrInvalidArgument)
	}
	c.life.RLock()
	defer c.life.RUnlock()
	switch c.phase.Load() {
	case phaseNew:
		return ErrNotStarted
	case phaseStopped:
		return ErrStopped
	}
	inst := c.live.get(sagaID)
	if inst == nil {
		inst = c.stuck.get(sagaID)
	}
	if inst == nil {
		err := c.notHere(ctx, sagaID)
		if !forward || c.claimer == nil || !errors.Is(err, ErrFenced) {
			return err
		}
		if dedupKey == "" { // so that its owner records it once
			dedupKey = "forwarded/" + c.cfg.NewID()
		}
		return c.claimer.Forward(ctx, ForwardedSignal{
			SagaID: sagaID, Name: name, Payload: slices.Clone(payload), DedupKey: dedupKey,
		})
	}

	inst.mu.Lock()
	if inst.status.Terminal() {
		inst.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrFinished, sagaID)
	}
	if inst.duplicate(dedupKey) {
		inst.mu.Unlock()
		return nil
	}
	err := c.commit(inst, Event{Type: EventSignalReceived, Signal: name, DedupKey: dedupKey, Payload: slices.Clone(payload)})
	wake := err == nil && inst.parked && inst.waiting == name
	inst.mu.Unlock()
	if wake {
		c.wake(inst, name)
	}
	return err
}

// notHere explains why an instance that this coordinator does not hold
// cannot take a request.
func (c *Coordinator[S]) notHere(ctx context.Context, sagaID string) error {
	events, err := c.Events(ctx, sagaID)
	if err != nil {
		return err
	}
	if events[len(events)-1].Ends() {
		return fmt.Errorf("%w: %q", ErrFinished, sagaID)
	}
	return fmt.Errorf("%w: %q is not run by this coordinator", ErrFenced, sagaID)
}

// Retry resumes the compensation of a stuck instance: the step whose
// compensation gave up gets a fresh set of attempts. It returns an error
// wrapping ErrNotStuck if the instance is not stuck, ErrNotFound if it does
// not exist, ErrFenced if it is stuck in another process sharing the store
// (which can retry it), and ErrOverloaded if no in-flight slot is free
// (with WaitForCapacity, once ctx ends). The instance stays stuck until
// Retry has a slot.
func (c *Coordinator[S]) Retry(ctx context.Context, sagaID string) error {
	if sagaID == "" {
		return fmt.Errorf("%w: empty saga ID", ErrInvalidArgument)
	}
	c.life.RLock()
	defer c.life.RUnlock()
	if err := c.running(); err != nil {
		return err
	}
	if c.stuck.get(sagaID) == nil {
		if c.live.get(sagaID) != nil {
			return fmt.Errorf("%w: %q is running", ErrNotStuck, sagaID)
		}
		snap, err := c.Get(ctx, sagaID)
		if err != nil {
			return err
		}
		// Stuck in the store but not here: another process sharing the
		// store holds it, unless it has just moved here meanwhile.
		if snap.Status == StatusStuck && c.claimer != nil && c.stuck.get(sagaID) == nil && c.live.get(sagaID) == nil {
			return fmt.Errorf("%w: %q is stuck in another process, which can retry it", ErrFenced, sagaID)
		}
		return fmt.Errorf("%w: %q is %v", ErrNotStuck, sagaID, snap.Status)
	}
	// Take the slot before moving the instance, so that it stays visible
	// as stuck while Retry waits for capacity.
	if err := c.acquire(ctx); err != nil {
		return err
	}
	inst := c.stuck.remove(sagaID)
	if inst == nil { // another Retry got there first
		c.release()
		return fmt.Errorf("%w: %q is being retried", ErrNotStuck, sagaID)
	}
	c.live.add(sagaID, inst) // finish removed it from live before it was stuck
	inst.mu.Lock()
	if err := c.commit(inst, Event{Type: EventCompensationStarted}); err != nil {
		inst.mu.Unlock()
		c.live.remove(sagaID)
		c.stuck.add(sagaID, inst)
		c.release()
		return err
	}
	inst.slotted = true
	inst.mu.Unlock()
	c.log.LogAttrs(ctx, slog.LevelInfo, "saga: retrying stuck compensation", slog.String("saga_id", sagaID))
	c.ready <- inst
	return nil
}
