package orderflow_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/orderflow"
)

var errInjected = errors.New("injected failure")

// faultyPayment returns a PaymentService on a fake clock, with unlimited
// credit for everyone.
func faultyPayment() (*orderflow.PaymentService, *clock.Fake) {
	clk := clock.NewFake(time.Time{})
	return orderflow.NewPaymentService(orderflow.PaymentConfig{Clock: clk}), clk
}

// chargeErr charges 1.00 to Ada for the order named after key and returns
// the error.
func chargeErr(t *testing.T, p *orderflow.PaymentService, key string) error {
	t.Helper()
	_, err := p.Charge(t.Context(), chargeReq(key, adaEmail, 100))
	return err
}

type callResult struct {
	id  string
	err error
}

// chargeAsync charges in a new goroutine and returns where its result will
// be delivered.
func chargeAsync(ctx context.Context, p *orderflow.PaymentService, key string) <-chan callResult {
	done := make(chan callResult, 1)
	go func() {
		id, err := p.Charge(ctx, chargeReq(key, adaEmail, 100))
		done <- callResult{id, err}
	}()
	return done
}

// requireNotDone fails if a result has already arrived.
func requireNotDone(t *testing.T, done <-chan callResult) {
	t.Helper()
	select {
	case r := <-done:
		require.FailNow(t, "the call returned early", "%+v", r)
	default:
	}
}

func TestFaultsFailAlways(t *testing.T) {
	t.Parallel()
	p, _ := faultyPayment()

	remove := p.FailAlways(nil)
	for i := range 5 {
		require.ErrorIs(t, chargeErr(t, p, fmt.Sprint("k", i)), orderflow.ErrUnavailable)
	}
	require.ErrorIs(t, p.Refund(t.Context(), undoReq("k0")), orderflow.ErrUnavailable, "every operation fails")
	assert.Empty(t, p.Charges(), "a failed call does nothing")
	_, used := p.Credit(adaEmail)
	assert.Zero(t, used)

	remove()
	require.NoError(t, chargeErr(t, p, "k0"))
	remove() // removing twice is harmless
	require.NoError(t, chargeErr(t, p, "k1"))
}

func TestFaultsFailAlwaysWithError(t *testing.T) {
	t.Parallel()
	s := newShipping(nil)
	remove := s.FailAlways(errInjected)

	_, err := s.CreateShipment(t.Context(), shipReq("k1", "1 Main St"))
	require.ErrorIs(t, err, errInjected)
	require.NotErrorIs(t, err, orderflow.ErrUnavailable)
	require.ErrorIs(t, s.CancelShipment(t.Context(), undoReq("k1")), errInjected)
	assert.Empty(t, s.Shipments(), "the failed cancel did not void the key")

	remove()
	_, err = s.CreateShipment(t.Context(), shipReq("k1", "1 Main St"))
	require.NoError(t, err)
}

func TestFaultsFailNext(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2, 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			p, _ := faultyPayment()
			p.FailNext(n, nil)
			for i := range n {
				require.ErrorIs(t, chargeErr(t, p, "k"), orderflow.ErrUnavailable, "call %d", i+1)
			}
			for range 3 {
				require.NoError(t, chargeErr(t, p, "k"))
			}
			assert.Len(t, p.Charges(), 1)
		})
	}
}

func TestFaultsFailNextCountsEveryOperation(t *testing.T) {
	t.Parallel()
	p, _ := faultyPayment()
	p.FailNext(2, errInjected)
	require.ErrorIs(t, chargeErr(t, p, "k1"), errInjected)
	require.ErrorIs(t, p.Refund(t.Context(), undoReq("k1")), errInjected)
	require.NoError(t, chargeErr(t, p, "k1"))
}

func TestFaultsFailNextNothing(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, -1} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			p, _ := faultyPayment()
			remove := p.FailNext(n, nil)
			require.NoError(t, p.Ping(t.Context()))
			require.NoError(t, chargeErr(t, p, "k1"), "the next %d calls fail: none", n)
			require.NoError(t, chargeErr(t, p, "k2"))
			remove()
		})
	}
}

func TestFaultsFailNextRemovedEarly(t *testing.T) {
	t.Parallel()
	p, _ := faultyPayment()
	remove := p.FailNext(3, nil)
	require.ErrorIs(t, chargeErr(t, p, "k"), orderflow.ErrUnavailable)
	remove()
	require.NoError(t, chargeErr(t, p, "k"))
}

func TestFaultsFailOrder(t *testing.T) {
	t.Parallel()
	p, _ := faultyPayment()
	remove := p.FailOrder("order-bad", errInjected)

	for range 3 {
		require.ErrorIs(t, chargeErr(t, p, "bad"), errInjected)
	}
	require.ErrorIs(t, p.Refund(t.Context(), undoReq("bad")), errInjected, "every operation of the order")
	require.NoError(t, chargeErr(t, p, "good"))
	require.NoError(t, p.Refund(t.Context(), undoReq("good")))

	remove()
	require.NoError(t, chargeErr(t, p, "bad"))
}

func TestFaultsFailOrderDefaultsToUnavailable(t *testing.T) {
	t.Parallel()
	p, _ := faultyPayment()
	p.FailOrder("order-bad", nil)
	require.ErrorIs(t, chargeErr(t, p, "bad"), orderflow.ErrUnavailable)
}

func TestFaultsInjectOp(t *testing.T) {
	t.Parallel()
	s := newShipping(nil)
	remove := s.Inject(orderflow.Fault{Op: "cancel", Err: errInjected})

	_, err := s.CreateShipment(t.Context(), shipReq("k1", "1 Main St"))
	require.NoError(t, err, "another operation is unaffected")
	require.ErrorIs(t, s.CancelShipment(t.Context(), undoReq("k1")), errInjected)
	assert.False(t, shipmentsByKey(s)["k1"].Canceled)

	remove()
	require.NoError(t, s.CancelShipment(t.Context(), undoReq("k1")))
	assert.True(t, shipmentsByKey(s)["k1"].Canceled)
}

func TestFaultsInjectOpAndOrderWithTimes(t *testing.T) {
	t.Parallel()
	p, _ := faultyPayment()
	p.Inject(orderflow.Fault{Op: "charge", OrderID: "order-a", Times: 2, Err: errInjected})

	require.NoError(t, chargeErr(t, p, "b"), "another order is unaffected and not counted")
	require.NoError(t, p.Refund(t.Context(), orderflow.UndoRequest{Key: "other", OrderID: "order-a"}),
		"another operation is unaffected and not counted")
	require.ErrorIs(t, chargeErr(t, p, "a"), errInjected)
	require.ErrorIs(t, chargeErr(t, p, "a"), errInjected)
	require.NoError(t, chargeErr(t, p, "a"), "the fault is used up")
}

func TestFaultsFirstErrorWins(t *testing.T) {
	t.Parallel()
	p, _ := faultyPayment()
	errFirst := errors.New("first")
	p.FailNext(1, errFirst)
	remove := p.FailAlways(nil)

	require.ErrorIs(t, chargeErr(t, p, "k"), errFirst)
	require.ErrorIs(t, chargeErr(t, p, "k"), orderflow.ErrUnavailable)
	remove()
	require.NoError(t, chargeErr(t, p, "k"))
}

func TestFaultsCombine(t *testing.T) {
	t.Parallel()
	const delay = 3 * time.Second
	p, clk := faultyPayment()
	p.Delay(delay)
	p.FailOrder("order-a", errInjected)

	done := chargeAsync(t.Context(), p, "a") // order-a
	require.NoError(t, clk.BlockUntil(t.Context(), 1), "the latency applies to the failing order too")
	clk.Advance(delay)
	r := <-done
	require.ErrorIs(t, r.err, errInjected)
	assert.Empty(t, p.Charges())
}

func TestFaultsDelay(t *testing.T) {
	t.Parallel()
	const delay = 5 * time.Second
	p, clk := faultyPayment()
	p.Delay(delay)
	start := clk.Now()

	done := chargeAsync(t.Context(), p, "k1")
	require.NoError(t, clk.BlockUntil(t.Context(), 1), "the call waits on the clock")
	clk.Advance(delay - time.Nanosecond)
	requireNotDone(t, done)
	assert.Empty(t, p.Charges(), "nothing happens before the delay has passed")

	clk.Advance(time.Nanosecond)
	r := <-done
	require.NoError(t, r.err, "a delay without an error lets the call proceed")
	assert.Equal(t, delay, clk.Now().Sub(start))
	charges := p.Charges()
	require.Len(t, charges, 1)
	assert.Equal(t, r.id, charges[0].ID)
	assert.Zero(t, clk.Timers())
}

func TestFaultsDelayThenError(t *testing.T) {
	t.Parallel()
	p, clk := faultyPayment()
	p.Inject(orderflow.Fault{Delay: time.Minute, Err: errInjected, Times: 1})

	done := chargeAsync(t.Context(), p, "k1")
	require.NoError(t, clk.BlockUntil(t.Context(), 1))
	requireNotDone(t, done)
	d, ok := clk.AdvanceToNext()
	require.True(t, ok)
	assert.Equal(t, time.Minute, d)
	r := <-done
	require.ErrorIs(t, r.err, errInjected)
	assert.Empty(t, p.Charges())

	require.NoError(t, chargeErr(t, p, "k1"), "Times: 1 is used up")
}

func TestFaultsDelayEndsWithContext(t *testing.T) {
	t.Parallel()
	p, clk := faultyPayment()
	p.Delay(time.Hour)

	ctx, cancel := context.WithCancel(t.Context())
	done := chargeAsync(ctx, p, "k1")
	require.NoError(t, clk.BlockUntil(t.Context(), 1))
	cancel()
	r := <-done
	require.ErrorIs(t, r.err, context.Canceled)
	assert.Empty(t, p.Charges())
	assert.Zero(t, clk.Timers(), "the delay's timer was stopped")
}

func TestFaultsHang(t *testing.T) {
	t.Parallel()
	p, _ := faultyPayment()
	remove := p.Hang()

	ctx, cancel := context.WithCancel(t.Context())
	done := chargeAsync(ctx, p, "k1")
	cancel()
	r := <-done
	require.ErrorIs(t, r.err, context.Canceled)
	assert.Empty(t, p.Charges())

	remove()
	require.NoError(t, chargeErr(t, p, "k1"))
}

func TestFaultsHangUntilDeadline(t *testing.T) {
	t.Parallel()
	p, clk := faultyPayment()
	p.Hang()

	ctx, cancel := clock.WithTimeout(t.Context(), clk, 30*time.Second)
	defer cancel()
	done := chargeAsync(ctx, p, "k1")
	clk.Advance(30*time.Second - time.Nanosecond)
	requireNotDone(t, done)
	clk.Advance(time.Nanosecond)
	r := <-done
	require.ErrorIs(t, r.err, context.DeadlineExceeded)
	assert.Empty(t, p.Charges())
}

func TestFaultsHangOneOperation(t *testing.T) {
	t.Parallel()
	p, _ := faultyPayment()
	p.Inject(orderflow.Fault{Op: "refund", Hang: true})
	require.NoError(t, chargeErr(t, p, "k1"), "another operation does not hang")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, p.Refund(ctx, undoReq("k1")), context.Canceled)
	assert.False(t, chargesByKey(p)["k1"].Refunded)
}

func TestFaultsClear(t *testing.T) {
	t.Parallel()
	p, _ := faultyPayment()
	p.FailAlways(nil)
	p.FailNext(3, errInjected)
	p.FailOrder("order-k1", nil)
	p.Hang()
	require.Error(t, p.Ping(t.Context()))

	p.Clear()
	require.NoError(t, p.Ping(t.Context()))
	require.NoError(t, chargeErr(t, p, "k1"))
	require.NoError(t, p.Refund(t.Context(), undoReq("k1")))
}

func TestFaultsPing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		inject func(p *orderflow.PaymentService)
		want   error
	}{
		{"no fault", func(*orderflow.PaymentService) {}, nil},
		{"FailAlways", func(p *orderflow.PaymentService) { p.FailAlways(nil) }, orderflow.ErrUnavailable},
		{"FailAlways with error", func(p *orderflow.PaymentService) { p.FailAlways(errInjected) }, errInjected},
		{"FailNext", func(p *orderflow.PaymentService) { p.FailNext(2, nil) }, nil},
		{"FailOrder", func(p *orderflow.PaymentService) { p.FailOrder("order-k1", nil) }, nil},
		{"one operation", func(p *orderflow.PaymentService) { p.Inject(orderflow.Fault{Op: "charge", Err: errInjected}) }, nil},
		{"Delay", func(p *orderflow.PaymentService) { p.Delay(time.Second) }, nil},
		{"Hang", func(p *orderflow.PaymentService) { p.Hang() }, nil},
		{"outage behind other faults", func(p *orderflow.PaymentService) {
			p.FailNext(1, nil)
			p.FailOrder("order-k1", nil)
			p.FailAlways(errInjected)
		}, errInjected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, _ := faultyPayment()
			tt.inject(p)
			err := p.Ping(t.Context())
			if tt.want == nil {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, tt.want)
		})
	}
}

func TestFaultsPingConsumesNothing(t *testing.T) {
	t.Parallel()
	p, _ := faultyPayment()
	p.FailNext(2, nil)
	for range 5 {
		require.NoError(t, p.Ping(t.Context()))
	}
	require.ErrorIs(t, chargeErr(t, p, "k"), orderflow.ErrUnavailable)
	require.ErrorIs(t, chargeErr(t, p, "k"), orderflow.ErrUnavailable)
	require.NoError(t, chargeErr(t, p, "k"))

	remove := p.FailAlways(nil)
	for range 5 {
		require.ErrorIs(t, p.Ping(t.Context()), orderflow.ErrUnavailable)
	}
	require.ErrorIs(t, chargeErr(t, p, "k2"), orderflow.ErrUnavailable, "still down after pings")
	remove()
	require.NoError(t, p.Ping(t.Context()))
}

func TestFaultsOnInventory(t *testing.T) {
	t.Parallel()
	s := newInventory(orderflow.InventoryConfig{}, orderflow.Product{Name: "a", Price: 100, Stock: 5})
	s.Inject(orderflow.Fault{Op: "reserve", Times: 1}) // a matching fault without an error
	s.Inject(orderflow.Fault{Op: "release", Err: errInjected})

	_, err := s.Reserve(t.Context(), reserveReq("k1", units("a", 2)))
	require.NoError(t, err, "a fault without Err lets the call proceed")
	require.ErrorIs(t, s.Release(t.Context(), undoReq("k1")), errInjected)
	assertStock(t, s, map[string][2]int{"a": {3, 2}})
}
