package pgstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/pgstore"
	"github.com/sagaflow/sagaflow/saga/sagatest"
)

// claimInterval is how often the test coordinators look for orphans.
const claimInterval = time.Second

// order is the state of the test saga.
type order struct {
	N int `json:"n"`
}

// effects records what the steps did, as a downstream service would:
// effects by idempotency key, so a step run again after a takeover counts
// once, and which node ran each step.
type effects struct {
	mu    sync.Mutex
	done  map[string]int    // idempotency key → times applied
	ranOn map[string]string // idempotency key → node that applied it
	calls map[string]int    // node → actions run
	gate  map[string]chan struct{}
}

func newEffects() *effects {
	return &effects{done: map[string]int{}, ranOn: map[string]string{}, calls: map[string]int{}, gate: map[string]chan struct{}{}}
}

// hold makes the step "reserve" of sagaID wait until its context ends.
func (e *effects) hold(sagaID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gate[sagaID] = make(chan struct{})
}

// node is one coordinator with its own store, as one process would have.
type node struct {
	name  string
	store *pgstore.Store
	coord *saga.Coordinator[order]
}

// startNode opens a store named name on c and starts a coordinator on it
// whose steps record into fx.
func startNode(t *testing.T, c *cluster, name string, fx *effects) *node {
	t.Helper()
	store := c.open(name)
	coord := newCoordinator(t, c, name, fx, store)
	require.NoError(t, coord.Startup(t.Context()))
	n := &node{name: name, store: store, coord: coord}
	t.Cleanup(func() { n.stop(t) })
	return n
}

// newCoordinator returns node name's coordinator of the order saga on
// store, not started.
func newCoordinator(t *testing.T, c *cluster, name string, fx *effects, store saga.Store) *saga.Coordinator[order] {
	t.Helper()
	step := func(step string) saga.Step[order] {
		return saga.Step[order]{
			Name: step,
			Action: func(ctx context.Context, o *order) error {
				info, _ := saga.Info(ctx)
				fx.mu.Lock()
				gate := fx.gate[info.SagaID]
				fx.calls[name]++
				fx.mu.Unlock()
				if gate != nil && step == "reserve" && name == "a" {
					<-ctx.Done()
					return ctx.Err()
				}
				fx.mu.Lock()
				fx.done[info.IdempotencyKey]++
				fx.ranOn[info.IdempotencyKey] = name
				fx.mu.Unlock()
				return nil
			},
		}
	}
	def, err := saga.NewDefinition("order", []saga.Step[order]{
		step("validate"), step("charge"), step("reserve"), step("ship"),
	})
	require.NoError(t, err)
	coord, err := saga.New(def, saga.Config{
		Store: store, Clock: c.clock, Logger: slog.New(slog.DiscardHandler),
		ClaimInterval: claimInterval, Workers: 64,
	})
	require.NoError(t, err)
	return coord
}

// stop shuts the coordinator down gracefully.
func (n *node) stop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	assert.NoError(t, n.coord.Shutdown(ctx), "shutdown of %s", n.name)
}

// subscribeAll subscribes to every event of the nodes' coordinators.
func subscribeAll(t *testing.T, nodes ...*node) []*saga.Subscription {
	var subs []*saga.Subscription
	for _, n := range nodes {
		sub := n.coord.Subscribe(saga.SubscribeOptions{Buffer: 1 << 16})
		t.Cleanup(sub.Close)
		subs = append(subs, sub)
	}
	return subs
}

// waitEnded waits until the subscriptions have seen every saga in ids end.
func waitEnded(t *testing.T, subs []*saga.Subscription, ids []string) {
	t.Helper()
	pending := map[string]bool{}
	for _, id := range ids {
		pending[id] = true
	}
	events := make(chan saga.Event)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, sub := range subs {
		wg.Go(func() {
			for {
				var e saga.Event
				select {
				case e = <-sub.Events():
				case <-stop:
					return
				}
				select {
				case events <- e:
				case <-stop:
					return
				}
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	timeout := time.After(2 * time.Minute) // a safety net, not a wait
	for len(pending) > 0 {
		select {
		case e := <-events:
			if e.Ends() {
				delete(pending, e.SagaID)
			}
		case <-timeout:
			t.Fatalf("%d sagas did not end, e.g. %v", len(pending), firstKey(pending))
		}
	}
}

func firstKey(m map[string]bool) string {
	for k := range m {
		return k
	}
	return ""
}

func TestThreeCoordinatorsShareTheWork(t *testing.T) {
	c := newCluster(t)
	fx := newEffects()
	nodes := []*node{startNode(t, c, "a", fx), startNode(t, c, "b", fx), startNode(t, c, "c", fx)}
	subs := subscribeAll(t, nodes...)

	const orders = 5000
	ids := make([]string, orders)
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := w; i < orders; i += 32 {
				ids[i] = fmt.Sprintf("order-%05d", i)
				_, err := nodes[i%3].coord.Start(t.Context(), order{N: i}, saga.WithID(ids[i]))
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	waitEnded(t, subs, ids)

	for _, id := range ids {
		snap, err := nodes[0].coord.Get(t.Context(), id)
		require.NoError(t, err)
		assert.Equal(t, saga.StatusCompleted, snap.Status, id)
	}
	fx.mu.Lock()
	defer fx.mu.Unlock()
	assert.Len(t, fx.done, 4*orders, "effects")
	for key, n := range fx.done {
		if n != 1 {
			t.Errorf("%s applied %d times", key, n)
		}
	}
	for _, n := range nodes {
		// Each was given a third; offers may move a few.
		assert.InDelta(t, 4*orders/3, fx.calls[n.name], 4*orders/12, "actions run by %s", n.name)
	}
	t.Logf("actions per node: %v", fx.calls)
}

// gated is a cluster whose one-step sagas hold until release is closed;
// entered receives the node's name as each starts running.
type gated struct {
	c       *cluster
	entered chan string
	release chan struct{}
	subs    []*saga.Subscription
	stores  map[string]*pgstore.Store // by node
	logs    map[string]chan string    // by node: the messages its coordinator logs
}

// messages is a slog.Handler that sends each record's message to a channel,
// dropping those that do not fit.
type messages chan string

func (m messages) Enabled(context.Context, slog.Level) bool { return true }
func (m messages) WithAttrs([]slog.Attr) slog.Handler       { return m }
func (m messages) WithGroup(string) slog.Handler            { return m }
func (m messages) Handle(_ context.Context, r slog.Record) error {
	select {
	case m <- r.Message:
	default:
	}
	return nil
}

func newGated(t *testing.T) *gated {
	return &gated{
		c: newCluster(t), entered: make(chan string, 1000), release: make(chan struct{}),
		stores: map[string]*pgstore.Store{}, logs: map[string]chan string{},
	}
}

// start runs a coordinator for node name, subscribed to in g.subs.
func (g *gated) start(t *testing.T, name string, maxInFlight int) *saga.Coordinator[order] {
	def, err := saga.NewDefinition("order", []saga.Step[order]{{
		Name: "work",
		Action: func(ctx context.Context, o *order) error {
			g.entered <- name
			select {
			case <-g.release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
	}})
	require.NoError(t, err)
	g.stores[name] = g.c.open(name)
	g.logs[name] = make(chan string, 1000)
	coord, err := saga.New(def, saga.Config{
		Store: g.stores[name], Clock: g.c.clock, Logger: slog.New(messages(g.logs[name])),
		ClaimInterval: claimInterval, Workers: 128, MaxInFlight: maxInFlight,
	})
	require.NoError(t, err)
	require.NoError(t, coord.Startup(t.Context()))
	t.Cleanup(func() { assert.NoError(t, coord.Shutdown(context.Background())) })
	sub := coord.Subscribe(saga.SubscribeOptions{Buffer: 1024})
	t.Cleanup(sub.Close)
	g.subs = append(g.subs, sub)
	return coord
}

// running waits until n sagas have started running, and counts them by
// node.
func (g *gated) running(t *testing.T, n int) map[string]int {
	t.Helper()
	ran := map[string]int{}
	timeout := time.After(sagatest.WaitTimeout) // a safety net, not a wait
	for range n {
		select {
		case name := <-g.entered:
			ran[name]++
		case <-timeout:
			t.Fatalf("only %v orders started running", ran)
		}
	}
	return ran
}

// finish releases the sagas, waits for ids to complete, and checks that
// none ran twice.
func (g *gated) finish(t *testing.T, coord *saga.Coordinator[order], ids []string) {
	t.Helper()
	close(g.release)
	waitEnded(t, g.subs, ids)
	for _, id := range ids {
		snap, err := coord.Get(t.Context(), id)
		require.NoError(t, err)
		assert.Equal(t, saga.StatusCompleted, snap.Status, id)
	}
	select {
	case name := <-g.entered:
		t.Errorf("an order ran twice, the second time on %s", name)
	default:
	}
}

func TestNewInstancesSpreadFromOneProcess(t *testing.T) {
	g := newGated(t)
	// a starts last, so that its census at Startup counts all three.
	b, _ := g.start(t, "c", 0), g.start(t, "b", 0)
	a := g.start(t, "a", 0)

	// Every order is started on a, and its one step holds until released.
	const orders = 90
	var ids []string
	for i := range orders {
		id, err := a.Start(t.Context(), order{N: i})
		require.NoError(t, err)
		ids = append(ids, id)
	}
	g.c.clock.Advance(claimInterval) // b and c count the work and claim their share
	ran := g.running(t, orders)
	t.Logf("orders running per node: %v; a offered %d", ran, a.Health(t.Context()).Offered)
	share := orders / 3
	for _, name := range []string{"a", "b", "c"} {
		assert.Greater(t, ran[name], share/2, "orders run by %s", name)
		assert.LessOrEqual(t, ran[name], share+share/4+1, "orders run by %s: its share, and a quarter more", name)
	}
	assert.Equal(t, orders-ran["a"], a.Health(t.Context()).Offered, "what a did not run, it offered")
	g.finish(t, b, ids)
}

func TestOffersAreBounded(t *testing.T) {
	g := newGated(t)
	b, _ := g.start(t, "c", 0), g.start(t, "b", 0)
	const capacity = 10
	a := g.start(t, "a", capacity)

	// Nobody claims until the clock moves: a offers MaxInFlight, then runs
	// MaxInFlight itself, then is overloaded.
	var ids []string
	for i := range 2 * capacity {
		id, err := a.Start(t.Context(), order{N: i})
		require.NoError(t, err, "start %d", i)
		ids = append(ids, id)
	}
	_, err := a.Start(t.Context(), order{})
	assert.ErrorIs(t, err, saga.ErrOverloaded, "once the offers waiting reach MaxInFlight and a is full")
	assert.Equal(t, capacity, g.running(t, capacity)["a"], "a runs what it can")
	h := a.Health(t.Context())
	assert.Equal(t, capacity, h.Offered, "offered")
	assert.Equal(t, capacity, h.InFlight, "in flight on a")

	g.c.clock.Advance(claimInterval)
	ran := g.running(t, capacity)
	assert.Zero(t, ran["a"], "a has no room")
	assert.Equal(t, capacity, ran["b"]+ran["c"], "b and c take the offers")
	g.finish(t, b, ids)
}

func TestSurvivorsShareTheOrphans(t *testing.T) {
	g := newGated(t)
	a := g.start(t, "a", 0)
	const orphans = 40
	var ids []string
	for i := range orphans {
		id, err := a.Start(t.Context(), order{N: i})
		require.NoError(t, err)
		ids = append(ids, id)
	}
	require.Equal(t, map[string]int{"a": orphans}, g.running(t, orphans), "a alone runs them")
	b, _ := g.start(t, "b", 0), g.start(t, "c", 0)

	// a dies; b and c, whose sagas hold, split what it had.
	g.stores["a"].Abandon()
	dead, cancel := context.WithCancel(context.Background())
	cancel()
	_ = a.Shutdown(dead)
	for died := g.c.clock.Now(); g.c.clock.Now().Sub(died) <= leaseTTL+claimInterval; {
		g.c.clock.Advance(leaseTTL / 4)
		require.NoError(t, g.stores["b"].Renew())
		require.NoError(t, g.stores["c"].Renew())
	}
	assert.Equal(t, map[string]int{"b": orphans / 2, "c": orphans / 2}, g.running(t, orphans),
		"each claims up to its share")
	g.finish(t, b, ids)
}

func TestPausedOwnerIsFenced(t *testing.T) {
	g := newGated(t)
	a := g.start(t, "a", 0)
	id, err := a.Start(t.Context(), order{})
	require.NoError(t, err)
	require.Equal(t, map[string]int{"a": 1}, g.running(t, 1))

	// a stops renewing its lease, as a process paused mid-step would, and
	// b takes the order over and runs the step again.
	g.stores["a"].Pause()
	paused := g.c.clock.Now()
	b := g.start(t, "b", 0)
	for g.c.clock.Now().Sub(paused) <= leaseTTL+claimInterval {
		g.c.clock.Advance(leaseTTL / 4)
		require.NoError(t, g.stores["b"].Renew())
	}
	require.Equal(t, map[string]int{"b": 1}, g.running(t, 1))

	// Both steps return; a's result is refused, b's recorded.
	g.finish(t, b, []string{id})
	timeout := time.After(sagatest.WaitTimeout) // a safety net, not a wait
	for msg := ""; msg != "saga: letting go of instance"; {
		select {
		case msg = <-g.logs["a"]:
		case <-timeout:
			t.Fatalf("a did not let go of the order; its last message: %q", msg)
		}
	}
	events, err := b.Events(t.Context(), id)
	require.NoError(t, err)
	var types []saga.EventType
	for _, e := range events {
		types = append(types, e.Type)
		if e.Type == saga.EventStepSucceeded {
			assert.Greater(t, e.Time.Sub(paused), leaseTTL, "recorded by b, after the takeover")
		}
	}
	assert.Equal(t, []saga.EventType{
		saga.EventSagaStarted, saga.EventStepStarted, saga.EventStepSucceeded, saga.EventSagaCompleted,
	}, types, "nothing of a's after the takeover")
	assert.Zero(t, a.Health(t.Context()).InFlight, "a holds nothing")
}

func TestFailover(t *testing.T) {
	c := newCluster(t)
	fx := newEffects()
	a := startNode(t, c, "a", fx)

	// a starts orders that hang in "reserve" (charged, not reserved) and
	// one that finishes before a dies.
	const orphans = 40
	var ids []string
	for i := range orphans {
		id := fmt.Sprintf("orphan-%02d", i)
		fx.hold(id)
		ids = append(ids, id)
	}
	done := a.coord.Subscribe(saga.SubscribeOptions{SagaID: "finished"})
	_, err := a.coord.Start(t.Context(), order{}, saga.WithID("finished"))
	require.NoError(t, err)
	for e := range done.Events() {
		if e.Ends() {
			break
		}
	}
	done.Close()
	reserving := a.coord.Subscribe(saga.SubscribeOptions{Buffer: 1 << 12})
	for i, id := range ids {
		_, err := a.coord.Start(t.Context(), order{N: i}, saga.WithID(id))
		require.NoError(t, err)
	}
	for started := 0; started < orphans; {
		e := <-reserving.Events()
		if e.Type == saga.EventStepStarted && e.Step == "reserve" {
			started++
		}
	}
	reserving.Close()
	b, cc := startNode(t, c, "b", fx), startNode(t, c, "c", fx)
	subs := subscribeAll(t, b, cc)

	// a dies: no renewal, no hand-back; its attempts are abandoned.
	died := c.clock.Now()
	a.store.Abandon()
	dead, cancel := context.WithCancel(context.Background())
	cancel()
	_ = a.coord.Shutdown(dead) // its store is gone; what it says is moot

	// Time passes for b and c, who keep renewing their leases.
	for c.clock.Now().Sub(died) <= leaseTTL+claimInterval {
		c.clock.Advance(leaseTTL / 4)
		require.NoError(t, b.store.Renew())
		require.NoError(t, cc.store.Renew())
	}
	waitEnded(t, subs, ids)

	took := map[string]bool{}
	var first time.Time
	for _, id := range ids {
		events, err := b.coord.Events(t.Context(), id)
		require.NoError(t, err)
		assert.Equal(t, saga.EventSagaCompleted, events[len(events)-1].Type, id)
		// The first event after the takeover: "reserve", started by a,
		// ran again and succeeded.
		var resumedAt time.Time
		for _, e := range events {
			if e.Time.After(died) {
				assert.Equal(t, saga.EventStepSucceeded, e.Type, "%s: first event after the takeover", id)
				assert.Equal(t, "reserve", e.Step, "%s: first event after the takeover", id)
				resumedAt = e.Time
				break
			}
		}
		require.False(t, resumedAt.IsZero(), "%s was not resumed", id)
		if first.IsZero() || resumedAt.Before(first) {
			first = resumedAt
		}
		fx.mu.Lock()
		took[fx.ranOn[id+"/reserve"]] = true
		assert.Equal(t, 1, fx.done[id+"/charge"], "%s charged once", id)
		assert.Equal(t, 1, fx.done[id+"/reserve"], "%s reserved once", id)
		assert.Equal(t, "a", fx.ranOn[id+"/charge"], "%s charged by a before it died", id)
		fx.mu.Unlock()
	}
	takeover := first.Sub(died)
	t.Logf("takeover %v after the owner died (lease %v, claim interval %v), by %v", takeover, leaseTTL, claimInterval, took)
	// A lease that ends at T is over at T: a that renewed just as it died
	// may be taken over exactly leaseTTL later.
	assert.GreaterOrEqual(t, takeover, leaseTTL, "taken over before the lease expired")
	assert.LessOrEqual(t, takeover, leaseTTL+claimInterval+leaseTTL/4, "takeover time")
	assert.NotContains(t, took, "a")

	snap, err := b.coord.Get(t.Context(), "finished")
	require.NoError(t, err)
	assert.Equal(t, saga.StatusCompleted, snap.Status)
}

// loadFails is a store whose Load fails, as when the database goes away
// between a claim and the reading of what was claimed.
type loadFails struct{ *pgstore.Store }

var errConnectionLost = errors.New("connection lost")

func (loadFails) Load(context.Context, string) ([]saga.Event, error) { return nil, errConnectionLost }

func TestFailedStartupHandsBack(t *testing.T) {
	c := newCluster(t)
	fx := newEffects()
	a := startNode(t, c, "a", fx)
	fx.hold("orphan")
	sub := a.coord.Subscribe(saga.SubscribeOptions{SagaID: "orphan", Buffer: 64})
	_, err := a.coord.Start(t.Context(), order{}, saga.WithID("orphan"))
	require.NoError(t, err)
	for e := range sub.Events() {
		if e.Type == saga.EventStepStarted && e.Step == "reserve" {
			break
		}
	}
	sub.Close()
	a.store.Abandon() // a dies, holding the order
	dead, cancel := context.WithCancel(context.Background())
	cancel()
	_ = a.coord.Shutdown(dead)
	c.clock.Advance(leaseTTL + time.Second)

	// b claims the order and cannot read it back.
	store := c.open("b")
	b := newCoordinator(t, c, "b", fx, loadFails{store})
	err = b.Startup(t.Context())
	require.ErrorIs(t, err, errConnectionLost)
	t.Cleanup(func() { _ = b.Shutdown(context.Background()) })

	// b's lease is live, yet the order and b's place in the count are
	// handed back: c need not wait for the lease.
	other := c.open("c")
	t.Cleanup(func() { _ = other.Close() })
	census, err := other.Census(t.Context(), "order")
	require.NoError(t, err)
	assert.Equal(t, 1, census.Processes, "b left the count")
	claimed, err := other.Claim(t.Context(), "order", 10)
	require.NoError(t, err)
	assert.Equal(t, []string{"orphan"}, claimed)
}

func TestDuplicateStartAcrossNodes(t *testing.T) {
	c := newCluster(t)
	fx := newEffects()
	nodes := []*node{startNode(t, c, "a", fx), startNode(t, c, "b", fx), startNode(t, c, "c", fx)}
	subs := subscribeAll(t, nodes...)
	const rounds = 20
	var ids []string
	for r := range rounds {
		id := fmt.Sprintf("order-%02d", r)
		ids = append(ids, id)
		var wg sync.WaitGroup
		errs := make([]error, 3*len(nodes))
		for i := range errs {
			wg.Go(func() {
				_, errs[i] = nodes[i%3].coord.Start(t.Context(), order{N: r}, saga.WithID(id))
			})
		}
		wg.Wait()
		started := 0
		for _, err := range errs {
			if err == nil {
				started++
			} else {
				assert.ErrorIs(t, err, saga.ErrDuplicate)
			}
		}
		assert.Equal(t, 1, started, "starts of %s that succeeded", id)
	}
	c.clock.Advance(claimInterval) // any that were offered are claimed
	waitEnded(t, subs, ids)
	fx.mu.Lock()
	defer fx.mu.Unlock()
	for _, id := range ids {
		assert.Equal(t, 1, fx.done[id+"/ship"], "%s shipped once", id)
	}
}

func TestSignalReachesTheOwner(t *testing.T) {
	c := newCluster(t)
	start := func(name string) *saga.Coordinator[order] {
		def, err := saga.NewDefinition("paid-order", []saga.Step[order]{
			{Name: "charge", Action: func(ctx context.Context, o *order) error {
				p, ok := saga.SignalPayload(ctx)
				if !ok {
					return saga.Permanent(errors.New("no payment"))
				}
				return json.Unmarshal(p, &o.N)
			}, Signal: "paid"},
		})
		require.NoError(t, err)
		coord, err := saga.New(def, saga.Config{
			Store: c.open(name), Clock: c.clock, Logger: slog.New(slog.DiscardHandler), ClaimInterval: claimInterval,
		})
		require.NoError(t, err)
		require.NoError(t, coord.Startup(t.Context()))
		t.Cleanup(func() { assert.NoError(t, coord.Shutdown(context.Background())) })
		return coord
	}
	a, b := start("a"), start("b")
	sub := a.Subscribe(saga.SubscribeOptions{SagaID: "order-1"})
	defer sub.Close()
	_, err := a.Start(t.Context(), order{}, saga.WithID("order-1"))
	require.NoError(t, err)

	// Sent to b, which does not own it: queued for a, twice, as a retrying
	// webhook would.
	require.NoError(t, b.Signal(t.Context(), "order-1", "paid", []byte(`42`), "webhook-7"))
	require.NoError(t, b.Signal(t.Context(), "order-1", "paid", []byte(`42`), "webhook-7"))
	assert.ErrorIs(t, b.Signal(t.Context(), "nobody", "paid", nil, ""), saga.ErrNotFound)

	c.clock.Advance(claimInterval) // a reads its inbox
	var got []saga.EventType
	for e := range sub.Events() {
		got = append(got, e.Type)
		if e.Ends() {
			break
		}
	}
	assert.Equal(t, []saga.EventType{
		saga.EventSagaStarted, saga.EventStepStarted,
		saga.EventSignalReceived, saga.EventStepSucceeded, saga.EventSagaCompleted,
	}, got,
		"recorded once by its owner, then the step ran")
	snap, err := b.Get(t.Context(), "order-1")
	require.NoError(t, err)
	assert.Equal(t, 42, snap.State.N)
	assert.ErrorIs(t, b.Signal(t.Context(), "order-1", "paid", nil, ""), saga.ErrFinished)
}

func TestGracefulShutdownHandsBackAtOnce(t *testing.T) {
	c := newCluster(t)
	fx := newEffects()
	a := startNode(t, c, "a", fx)
	reserving := a.coord.Subscribe(saga.SubscribeOptions{Buffer: 1 << 10})
	var ids []string
	for i := range 10 {
		id := fmt.Sprintf("order-%02d", i)
		fx.hold(id)
		ids = append(ids, id)
		_, err := a.coord.Start(t.Context(), order{N: i}, saga.WithID(id))
		require.NoError(t, err)
	}
	for started := 0; started < len(ids); {
		if e := <-reserving.Events(); e.Type == saga.EventStepStarted && e.Step == "reserve" {
			started++
		}
	}
	reserving.Close()
	b := startNode(t, c, "b", fx)
	subs := subscribeAll(t, b)

	// a stops; its attempts are cancelled at once, and its store stays
	// open and renewed, as for a process that runs other coordinators.
	stopped := c.clock.Now()
	dead, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, a.coord.Shutdown(dead))
	require.NoError(t, a.store.Ping(t.Context()), "a's lease is alive")

	c.clock.Advance(claimInterval) // b's next claim, long before a's lease expires
	waitEnded(t, subs, ids)
	for _, id := range ids {
		events, err := b.coord.Events(t.Context(), id)
		require.NoError(t, err)
		last := events[len(events)-1]
		assert.Equal(t, saga.EventSagaCompleted, last.Type, id)
		assert.LessOrEqual(t, last.Time.Sub(stopped), claimInterval, "%s finished within a claim interval", id)
		fx.mu.Lock()
		assert.Equal(t, "b", fx.ranOn[id+"/reserve"], id)
		fx.mu.Unlock()
	}
}

func TestRetryOfAnotherProcessesStuckInstanceIsFenced(t *testing.T) {
	c := newCluster(t)
	a := c.open("a") // a process whose coordinator gave up on an undo
	b := startNode(t, c, "b", newEffects())
	ev := func(seq uint64, typ saga.EventType, step string) saga.Event {
		return saga.Event{SagaID: "stuck", Run: "r1", Seq: seq, Type: typ, Step: step, Attempt: 1, Error: "declined"}
	}
	started := ev(1, saga.EventSagaStarted, "")
	started.Definition, started.Version, started.State, started.Error, started.Attempt = "order", 1, []byte(`{}`), "", 0
	require.NoError(t, a.Create(t.Context(), []saga.Event{started, ev(2, saga.EventStepStarted, "validate")}))
	require.NoError(t, a.Append(t.Context(), "stuck", 2, []saga.Event{
		ev(3, saga.EventStepFailed, "validate"), ev(4, saga.EventCompensationStarted, ""), ev(5, saga.EventSagaStuck, ""),
	}))
	snap, err := b.coord.Get(t.Context(), "stuck")
	require.NoError(t, err)
	require.Equal(t, saga.StatusStuck, snap.Status)

	err = b.coord.Retry(t.Context(), "stuck")
	assert.ErrorIs(t, err, saga.ErrFenced, "a owns it, and only a can retry it")
	assert.NotErrorIs(t, err, saga.ErrNotStuck)
}
