package sagatest

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga"
)

// The sharing and lease tests: several handles on one store stand for
// several processes. Each unfinished instance has one owner; only it may
// append; others take over what is released or whose lease expired.

// shared skips the test unless the store can be shared, and returns s and
// a second handle as claimers.
func shared(t *testing.T, s saga.Store, caps Capabilities) (a, b saga.Claimer) {
	t.Helper()
	if caps.Share == nil {
		t.Skip("the store is not shared between processes (Capabilities.Share is nil)")
	}
	a, ok := s.(saga.Claimer)
	require.True(t, ok, "Capabilities.Share is set but %T does not implement saga.Claimer", s)
	b, ok = caps.Share(t, s).(saga.Claimer)
	require.True(t, ok, "Share returned a store that is not a saga.Claimer")
	return a, b
}

// mustClaim claims up to max instances of def.
func mustClaim(t *testing.T, c saga.Claimer, def string, max int) []string {
	t.Helper()
	ids, err := c.Claim(t.Context(), def, max)
	require.NoError(t, err, "Claim(%q, %d)", def, max)
	return ids
}

func testSharedReads(t *testing.T, s saga.Store, caps Capabilities) {
	a, b := shared(t, s, caps)
	log := newLog("order-1", "orders", stepStarted)
	mustCreate(t, a, log)
	next := after("order-1", uint64(len(log)), stepSucceeded)
	mustAppend(t, a, "order-1", uint64(len(log)), next)

	assertLog(t, b, "order-1", append(log, next...))
	assertUnfinished(t, b, "orders", "order-1")
	assert.Empty(t, mustClaim(t, b, "orders", 10), "an instance whose owner is alive cannot be claimed")
}

func testSharedWritesFenced(t *testing.T, s saga.Store, caps Capabilities) {
	a, b := shared(t, s, caps)
	log := newLog("order-1", "orders", stepStarted)
	mustCreate(t, a, log)
	last := uint64(len(log))

	err := b.Append(t.Context(), "order-1", last, after("order-1", last, stepSucceeded))
	assert.ErrorIs(t, err, saga.ErrFenced, "append by a process that does not own the instance")
	assertLog(t, a, "order-1", log)

	// The owner goes on as if nothing happened.
	next := after("order-1", last, stepSucceeded)
	mustAppend(t, a, "order-1", last, next)
	assertLog(t, b, "order-1", append(log, next...))
}

func testSharedCreateDuplicate(t *testing.T, s saga.Store, caps Capabilities) {
	a, b := shared(t, s, caps)
	const rounds = 20
	for i := range rounds {
		id := fmt.Sprintf("order-%d", i)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for j, c := range []saga.Claimer{a, b} {
			wg.Go(func() { errs[j] = c.Create(t.Context(), newLog(id, "orders")) })
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			} else {
				assert.ErrorIs(t, err, saga.ErrDuplicate, "the create that lost, of %s", id)
			}
		}
		assert.Equal(t, 1, ok, "creates of %s that succeeded", id)
		assertLog(t, a, id, newLog(id, "orders"))
	}
}

func testSharedRelease(t *testing.T, s saga.Store, caps Capabilities) {
	a, b := shared(t, s, caps)
	log := newLog("order-1", "orders", stepStarted)
	mustCreate(t, a, log)
	mustCreate(t, a, newLog("order-2", "orders", stepStarted))
	last := uint64(len(log))

	require.NoError(t, a.Release(t.Context(), []string{"order-1", "never-created"}))
	assert.Equal(t, []string{"order-1"}, mustClaim(t, b, "orders", 10), "only the released instance is claimed")

	err := a.Append(t.Context(), "order-1", last, after("order-1", last, stepSucceeded))
	assert.ErrorIs(t, err, saga.ErrFenced, "append by the process that released the instance")
	next := after("order-1", last, stepSucceeded, sagaCompleted)
	mustAppend(t, b, "order-1", last, next)
	assertLog(t, a, "order-1", append(log, next...))
	assertUnfinished(t, a, "orders", "order-2")
}

func testSharedCloseHandsBack(t *testing.T, s saga.Store, caps Capabilities) {
	a, b := shared(t, s, caps)
	mustCreate(t, a, newLog("order-1", "orders", stepStarted))
	mustCreate(t, a, newLog("order-2", "orders"))
	mustCreate(t, a, newLog("done", "orders", completedTypes...))
	mustCreate(t, a, newLog("ship-1", "shipping"))
	require.NoError(t, a.Close())

	assert.Equal(t, []string{"order-1", "order-2"}, mustClaim(t, b, "orders", 10),
		"what a closed process owned is claimed at once, oldest first")
	assert.Equal(t, []string{"ship-1"}, mustClaim(t, b, "shipping", 10))
	assert.Empty(t, mustClaim(t, b, "orders", 10), "nothing is claimed twice")
}

func testSharedClaimDisjoint(t *testing.T, s saga.Store, caps Capabilities) {
	a, b := shared(t, s, caps)
	c, ok := caps.Share(t, s).(saga.Claimer)
	require.True(t, ok)
	const n = 200
	var want []string
	for i := range n {
		id := fmt.Sprintf("order-%03d", i)
		mustCreate(t, a, newLog(id, "orders", stepStarted))
		want = append(want, id)
	}
	require.NoError(t, a.Close())

	// Two claimers at once, in small bites: each instance goes to one.
	var mu sync.Mutex
	owner := map[string]int{}
	var wg sync.WaitGroup
	for who, cl := range []saga.Claimer{b, c} {
		wg.Go(func() {
			for {
				ids, err := cl.Claim(t.Context(), "orders", 7)
				if !assert.NoError(t, err) || len(ids) == 0 {
					return
				}
				mu.Lock()
				for _, id := range ids {
					if prev, dup := owner[id]; dup {
						t.Errorf("%s claimed by %d and %d", id, prev, who)
					}
					owner[id] = who
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	got := make([]string, 0, len(owner))
	for id := range owner {
		got = append(got, id)
	}
	slices.Sort(got)
	assert.Equal(t, want, got, "every released instance claimed exactly once")
}

// expiring skips the test unless leases can be made to lapse.
func expiring(t *testing.T, s saga.Store, caps Capabilities) (a, b saga.Claimer) {
	t.Helper()
	a, b = shared(t, s, caps)
	if caps.Expire == nil {
		t.Skip("the store's leases cannot be expired (Capabilities.Expire is nil)")
	}
	return a, b
}

func testLeaseExpiry(t *testing.T, s saga.Store, caps Capabilities) {
	a, b := expiring(t, s, caps)
	mustCreate(t, a, newLog("order-1", "orders", stepStarted))
	mustCreate(t, a, newLog("order-2", "orders", stepStarted))
	mustCreate(t, a, newLog("stuck", "orders", stepStarted, stepFailed, compStarted, compFailed, sagaStuck))
	mustCreate(t, a, newLog("done", "orders", completedTypes...))
	assert.Empty(t, mustClaim(t, b, "orders", 10), "claimed before the lease expired")

	caps.Expire(t, a)
	assert.Equal(t, []string{"order-1"}, mustClaim(t, b, "orders", 1), "oldest first, at most max")
	assert.Equal(t, []string{"order-2", "stuck"}, mustClaim(t, b, "orders", 10), "the rest, stuck included")
	assert.Empty(t, mustClaim(t, b, "orders", 10))
}

func testLeaseFencesStaleOwner(t *testing.T, s saga.Store, caps Capabilities) {
	a, b := expiring(t, s, caps)
	log := newLog("order-1", "orders", stepStarted)
	mustCreate(t, a, log)
	last := uint64(len(log))

	caps.Expire(t, a)
	require.Equal(t, []string{"order-1"}, mustClaim(t, b, "orders", 10))

	// The old owner wakes up and carries on where it was: refused.
	err := a.Append(t.Context(), "order-1", last, after("order-1", last, stepSucceeded))
	assert.ErrorIs(t, err, saga.ErrFenced, "append by the owner whose lease was taken over")
	err = a.Append(t.Context(), "order-1", last, after("order-1", last, stepSucceeded, sagaCompleted))
	assert.ErrorIs(t, err, saga.ErrFenced, "a second try is refused too")
	assertLog(t, b, "order-1", log)

	next := after("order-1", last, stepSucceeded)
	mustAppend(t, b, "order-1", last, next)
	assertLog(t, a, "order-1", append(log, next...))
	assert.Empty(t, mustClaim(t, a, "orders", 10), "the new owner is alive")
}

func testSharedForward(t *testing.T, s saga.Store, caps Capabilities) {
	a, b := shared(t, s, caps)
	ctx := t.Context()
	log := newLog("order-1", "orders", stepStarted)
	mustCreate(t, a, log)
	mustCreate(t, a, newLog("other-def", "shipping"))
	mustCreate(t, a, newLog("done", "orders", completedTypes...))

	paid := saga.ForwardedSignal{SagaID: "order-1", Name: "paid", Payload: []byte(`{"amount": 12.5}`), DedupKey: "pay-1"}
	require.NoError(t, b.Forward(ctx, paid))
	require.NoError(t, b.Forward(ctx, saga.ForwardedSignal{SagaID: "order-1", Name: "shipped", DedupKey: "ship-1"}))
	require.NoError(t, b.Forward(ctx, saga.ForwardedSignal{SagaID: "other-def", Name: "x", DedupKey: "x"}))
	assert.ErrorIs(t, b.Forward(ctx, saga.ForwardedSignal{SagaID: "done", Name: "paid", DedupKey: "d"}), saga.ErrFinished)
	assert.ErrorIs(t, b.Forward(ctx, saga.ForwardedSignal{SagaID: "nobody", Name: "paid", DedupKey: "n"}), saga.ErrNotFound)

	none, err := b.Inbox(ctx, "orders", 10)
	require.NoError(t, err)
	assert.Empty(t, none, "signals go to the owner's inbox only")

	got, err := a.Inbox(ctx, "orders", 10)
	require.NoError(t, err)
	require.Len(t, got, 2, "the owner's inbox for its definition")
	assert.Equal(t, "paid", got[0].Name, "oldest first")
	assert.Equal(t, "order-1", got[0].SagaID)
	assertBytes(t, paid.Payload, got[0].Payload, "payload")
	assert.Equal(t, "pay-1", got[0].DedupKey)
	assert.Equal(t, "shipped", got[1].Name)
	assert.Empty(t, got[1].Payload)

	first, err := a.Inbox(ctx, "orders", 1)
	require.NoError(t, err)
	assert.Equal(t, got[:1], first, "at most max")

	require.NoError(t, a.Delivered(ctx, []int64{got[0].ID}))
	rest, err := a.Inbox(ctx, "orders", 10)
	require.NoError(t, err)
	assert.Equal(t, got[1:], rest, "delivered signals are gone")

	// A new owner gets what was queued for its instance.
	require.NoError(t, a.Release(ctx, []string{"order-1"}))
	require.Equal(t, []string{"order-1"}, mustClaim(t, b, "orders", 10))
	moved, err := b.Inbox(ctx, "orders", 10)
	require.NoError(t, err)
	assert.Equal(t, got[1:], moved)
	gone, err := a.Inbox(ctx, "orders", 10)
	require.NoError(t, err)
	assert.Empty(t, gone)
}

func testSharedOffer(t *testing.T, s saga.Store, caps Capabilities) {
	a, b := shared(t, s, caps)
	ctx := t.Context()
	log := newLog("order-1", "orders", stepStarted)
	require.NoError(t, a.Offer(ctx, log))
	assertLog(t, b, "order-1", log)
	assertUnfinished(t, b, "orders", "order-1")

	last := uint64(len(log))
	err := a.Append(ctx, "order-1", last, after("order-1", last, stepSucceeded))
	assert.ErrorIs(t, err, saga.ErrFenced, "an offered instance is not its offerer's until claimed")
	assert.ErrorIs(t, b.Offer(ctx, newLog("order-1", "orders")), saga.ErrDuplicate, "offered twice")
	assert.ErrorIs(t, a.Create(ctx, newLog("order-1", "orders")), saga.ErrDuplicate, "created after it was offered")
	assert.ErrorIs(t, b.Offer(ctx, nil), saga.ErrInvalidArgument, "no events")
	bad := newLog("order-2", "orders", stepStarted)[1:]
	assert.ErrorIs(t, b.Offer(ctx, bad), saga.ErrInvalidEvent, "a log that does not start at 1")
	assert.ErrorIs(t, mustLoadErr(t, b, "order-2"), saga.ErrNotFound, "a refused offer stores nothing")
	assertLog(t, a, "order-1", log)

	assert.Equal(t, []string{"order-1"}, mustClaim(t, b, "orders", 10), "any process may claim an offer")
	next := after("order-1", last, stepSucceeded)
	mustAppend(t, b, "order-1", last, next)
	assertLog(t, a, "order-1", append(log, next...))
	assert.Empty(t, mustClaim(t, a, "orders", 10), "claimed once")
}

// mustLoadErr returns the error of Load(id).
func mustLoadErr(t *testing.T, s saga.Store, id string) error {
	t.Helper()
	_, err := s.Load(t.Context(), id)
	return err
}

func testSharedCensus(t *testing.T, s saga.Store, caps Capabilities) {
	a, b := shared(t, s, caps)
	ctx := t.Context()
	census := func(c saga.Claimer, def string) saga.Census {
		t.Helper()
		n, err := c.Census(ctx, def)
		require.NoError(t, err, "Census(%q)", def)
		return n
	}
	assert.Equal(t, saga.Census{Processes: 1}, census(a, "orders"), "only the caller runs it so far")
	assert.Equal(t, saga.Census{Processes: 2}, census(b, "orders"), "the caller and the other")
	assert.Equal(t, saga.Census{Processes: 1}, census(a, "shipping"), "counted by definition")

	mustCreate(t, a, newLog("order-1", "orders", stepStarted))
	mustCreate(t, b, newLog("order-2", "orders"))
	require.NoError(t, a.Offer(ctx, newLog("order-3", "orders", stepStarted)))
	mustCreate(t, a, newLog("done", "orders", completedTypes...))
	mustCreate(t, a, newLog("stuck", "orders", stepStarted, stepFailed, compStarted, compFailed, sagaStuck))
	mustCreate(t, a, newLog("ship-1", "shipping"))
	assert.Equal(t, saga.Census{Processes: 2, Unfinished: 4, Waiting: 1}, census(a, "orders"),
		"unfinished ones, stuck included, and the offered one waiting")

	require.NoError(t, a.Leave(ctx, "orders"))
	assert.Equal(t, saga.Census{Processes: 1, Unfinished: 4, Waiting: 1}, census(b, "orders"), "a left")
	assert.Equal(t, 2, census(a, "orders").Processes, "a census counts its caller again")

	_, err := a.Census(ctx, "")
	assert.ErrorIs(t, err, saga.ErrInvalidArgument, "empty definition")
	assert.ErrorIs(t, a.Leave(ctx, ""), saga.ErrInvalidArgument, "Leave of no definition")
}

func testLeaseExpiryCensus(t *testing.T, s saga.Store, caps Capabilities) {
	a, b := expiring(t, s, caps)
	ctx := t.Context()
	mustCreate(t, a, newLog("order-1", "orders", stepStarted))
	mustCreate(t, b, newLog("order-2", "orders", stepStarted))
	_, err := a.Census(ctx, "orders")
	require.NoError(t, err)
	n, err := b.Census(ctx, "orders")
	require.NoError(t, err)
	assert.Equal(t, saga.Census{Processes: 2, Unfinished: 2}, n)

	caps.Expire(t, a)
	n, err = b.Census(ctx, "orders")
	require.NoError(t, err)
	assert.Equal(t, saga.Census{Processes: 1, Unfinished: 2, Waiting: 1}, n,
		"a process whose lease expired no longer counts, and its instances wait")
}
