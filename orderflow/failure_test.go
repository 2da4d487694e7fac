package orderflow_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/orderflow"
	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/sagatest"
)

var errNoCourier = errors.New("no courier serves this address")

func TestFailureAtEachStepCompensates(t *testing.T) {
	t.Parallel()
	const email = "ada@example.com"
	for _, tc := range []struct {
		name    string
		arrange func(f *fixture, id string)
		events  []history
		err     string
	}{{
		name:    "validation",
		arrange: func(*fixture, string) {}, // the Validate rule below refuses this order
		events: []history{
			ok(orderflow.EventOrderCreated),
			fail(orderflow.EventOrderValidated),
			undo(orderflow.EventOrderCanceled),
		},
		err: "fraud suspected",
	}, {
		name:    "payment: insufficient credit",
		arrange: func(f *fixture, _ string) { f.payment.SetCreditLimit(email, 50000) },
		events: []history{
			ok(orderflow.EventOrderCreated),
			ok(orderflow.EventOrderValidated),
			fail(orderflow.EventPaymentProcessed),
			undo(orderflow.EventOrderCanceled),
		},
		err: "insufficient credit",
	}, {
		name: "inventory: insufficient stock",
		arrange: func(f *fixture, _ string) {
			f.inventory.AddProduct(orderflow.Product{Name: "laptop", Price: 99999, Stock: 0})
		},
		events: []history{
			ok(orderflow.EventOrderCreated),
			ok(orderflow.EventOrderValidated),
			ok(orderflow.EventPaymentProcessed),
			fail(orderflow.EventInventoryReserved),
			undo(orderflow.EventPaymentRefunded),
			undo(orderflow.EventOrderCanceled),
		},
		err: "insufficient stock",
	}, {
		name:    "shipping: injected",
		arrange: func(f *fixture, id string) { f.shipping.FailOrder(id, saga.Permanent(errNoCourier)) },
		events: []history{
			ok(orderflow.EventOrderCreated),
			ok(orderflow.EventOrderValidated),
			ok(orderflow.EventPaymentProcessed),
			ok(orderflow.EventInventoryReserved),
			fail(orderflow.EventOrderShipped),
			undo(orderflow.EventInventoryReleased),
			undo(orderflow.EventPaymentRefunded),
			undo(orderflow.EventOrderCanceled),
		},
		err: errNoCourier.Error(),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, func(c *orderflow.Config) {
				c.Validate = func(_ context.Context, o orderflow.Order) error {
					if tc.name == "validation" {
						return saga.Permanent(errors.New("fraud suspected"))
					}
					return nil
				}
			})
			f.payment.SetCreditLimit(email, 200000)
			f.inventory.AddProduct(orderflow.Product{Name: "laptop", Price: 99999, Stock: 3})
			id := "order-1"
			tc.arrange(f, id)
			limit, _ := f.payment.Credit(email)
			stock, _ := f.inventory.Stock("laptop")

			req := laptop(email)
			req.OrderID = id
			st := f.wait(f.place(req))
			assert.Equal(t, orderflow.StatusFailed, st.Status)
			assert.Contains(t, st.Error, tc.err)
			assert.Equal(t, tc.events, f.events(id))

			events, err := f.sys.GetEvents(context.Background(), id)
			require.NoError(t, err)
			last := events[len(events)-1]
			assert.Contains(t, last.Data["reason"], tc.err, "ORDER_CANCELED says why")

			// Every service is as it was before the order.
			l, used := f.payment.Credit(email)
			assert.Equal(t, limit, l)
			assert.Zero(t, used, "credit used")
			s, held := f.inventory.Stock("laptop")
			assert.Equal(t, stock, s, "stock")
			assert.Zero(t, held, "units held")
			f.ledger(map[string]orderflow.OrderStatus{id: st})
		})
	}
}

func TestPaymentFailingTwiceChargesOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.payment.Inject(orderflow.Fault{Op: "charge", Times: 2, Err: orderflow.ErrUnavailable})
	id := f.place(laptop("ada@example.com"))
	after := f.fireRetry(id, 0)
	f.fireRetry(id, after)
	st := f.wait(id)
	assert.Equal(t, orderflow.StatusCompleted, st.Status)

	charges := f.payment.Charges()
	require.Len(t, charges, 1)
	assert.Equal(t, orderflow.Money(99999), charges[0].Amount)
	assert.Equal(t, id+"/payment", charges[0].Key)
	_, used := f.payment.Credit("ada@example.com")
	assert.Equal(t, orderflow.Money(99999), used)

	var attempts []int
	log, err := f.sys.Coordinator().Events(context.Background(), id)
	require.NoError(t, err)
	for _, e := range log {
		if e.Type == saga.EventStepAttemptFailed {
			assert.Equal(t, orderflow.StepPayment, e.Step)
			attempts = append(attempts, e.Attempt)
		}
	}
	assert.Equal(t, []int{1, 2}, attempts)
	assert.Equal(t, []history{ // retries are the engine's business, not the order's
		ok(orderflow.EventOrderCreated),
		ok(orderflow.EventOrderValidated),
		ok(orderflow.EventPaymentProcessed),
		ok(orderflow.EventInventoryReserved),
		ok(orderflow.EventOrderShipped),
		ok(orderflow.EventOrderCompleted),
	}, f.events(id))
}

func TestHangingServiceTimesOutAndCompensates(t *testing.T) {
	t.Parallel()
	const timeout = 10 * time.Second
	f := setup(t, func(c *orderflow.Config) {
		c.StepTimeout = timeout
		c.Retry = saga.RetryPolicy{MaxAttempts: 2}
	})
	f.shipping.Inject(orderflow.Fault{Op: "ship", Hang: true})
	id := f.place(laptop("ada@example.com"))

	seq := sagatest.WaitEvent(t, f.sys.Coordinator(), id, saga.EventStepSucceeded, 0).Seq  // validate
	seq = sagatest.WaitEvent(t, f.sys.Coordinator(), id, saga.EventStepSucceeded, seq).Seq // payment
	seq = sagatest.WaitEvent(t, f.sys.Coordinator(), id, saga.EventStepSucceeded, seq).Seq // inventory
	// Each of the two shipping attempts hangs until its deadline.
	seq = f.timeOut(id, seq, timeout)
	seq = f.fireRetry(id, seq)
	f.timeOut(id, seq, timeout)

	st := f.wait(id)
	assert.Equal(t, orderflow.StatusFailed, st.Status)
	assert.Contains(t, st.Error, saga.ErrStepTimeout.Error())
	assert.Equal(t, []history{
		ok(orderflow.EventOrderCreated),
		ok(orderflow.EventOrderValidated),
		ok(orderflow.EventPaymentProcessed),
		ok(orderflow.EventInventoryReserved),
		fail(orderflow.EventOrderShipped),
		undo(orderflow.EventShipmentCanceled), // a timed-out booking may have happened
		undo(orderflow.EventInventoryReleased),
		undo(orderflow.EventPaymentRefunded),
		undo(orderflow.EventOrderCanceled),
	}, f.events(id))
	f.ledger(map[string]orderflow.OrderStatus{id: st})
	shipments := f.shipping.Shipments()
	require.Len(t, shipments, 1)
	assert.True(t, shipments[0].Voided, "the hung booking never happened: its cancellation voided the key")
}

func TestStuckRefundIsReportedAndRetried(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *orderflow.Config) {
		c.CompensationRetry = saga.RetryPolicy{MaxAttempts: 2}
	})
	remove := f.payment.Inject(orderflow.Fault{Op: "refund", Err: errors.New("gateway refunds are down")})
	f.shipping.FailOrder("order-1", saga.Permanent(errNoCourier))
	req := laptop("ada@example.com")
	req.OrderID = "order-1"
	id := f.place(req)
	f.fireRetry(id, 0)
	sagatest.WaitStatus(t, f.sys.Coordinator(), id, saga.StatusStuck)

	st, err := f.sys.GetStatus(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, orderflow.StatusCompensating, st.Status)
	assert.True(t, st.Stuck)
	assert.Contains(t, st.Error, "gateway refunds are down")
	events, err := f.sys.GetEvents(context.Background(), id)
	require.NoError(t, err)
	last := events[len(events)-1]
	assert.Equal(t, orderflow.EventPaymentRefunded, last.Type)
	assert.False(t, last.Success)
	assert.True(t, last.Compensation)

	waited, err := f.sys.Wait(context.Background(), id)
	require.NoError(t, err, "a stuck order has settled: Wait returns")
	assert.True(t, waited.Stuck)
	assert.Equal(t, orderflow.StatusCompensating, waited.Status)

	h := f.sys.Health(context.Background())
	assert.Equal(t, saga.HealthDegraded, h.State)
	assert.Equal(t, []string{id}, h.StuckIDs)
	_, used := f.payment.Credit("ada@example.com")
	assert.Equal(t, orderflow.Money(99999), used, "not refunded yet")

	remove()
	require.NoError(t, f.sys.Retry(context.Background(), id))
	st = f.wait(id)
	w, err := f.sys.Subscribe(context.Background(), id) // replays past the earlier stuck event
	require.NoError(t, err)
	replayed := collect(t, w)
	w.Close()
	assert.Equal(t, orderflow.EventOrderCanceled, replayed[len(replayed)-1].Type)
	assert.Equal(t, orderflow.StatusFailed, st.Status)
	assert.False(t, st.Stuck)
	f.ledger(map[string]orderflow.OrderStatus{id: st})
	assert.ErrorIs(t, f.sys.Retry(context.Background(), id), saga.ErrNotStuck)
	assert.ErrorIs(t, f.sys.Retry(context.Background(), "nope"), orderflow.ErrNotFound)
}

func TestShutdownWithOrdersInFlightNamesThem(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.shipping.Hang()
	ids := []string{"order-a", "order-b", "order-c"}
	for _, id := range ids {
		req := laptop(id + "@example.com")
		req.OrderID = id
		f.place(req)
	}
	for _, id := range ids {
		seq := sagatest.WaitEvent(t, f.sys.Coordinator(), id, saga.EventStepSucceeded, 0).Seq
		seq = sagatest.WaitEvent(t, f.sys.Coordinator(), id, saga.EventStepSucceeded, seq).Seq
		sagatest.WaitEvent(t, f.sys.Coordinator(), id, saga.EventStepSucceeded, seq) // shipping next
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // do not wait for the hung shipments
	err := f.sys.Shutdown(ctx)
	var unfinished *saga.UnfinishedError
	require.ErrorAs(t, err, &unfinished)
	assert.Equal(t, ids, unfinished.IDs)
	for _, id := range ids {
		assert.True(t, strings.Contains(err.Error(), id), "error names %s", id)
	}
	assert.Equal(t, saga.HealthStopped, f.sys.Health(context.Background()).State)
	_, err = f.sys.ProcessOrder(context.Background(), laptop("late@example.com"))
	assert.ErrorIs(t, err, saga.ErrStopped)
	// goleak in TestMain checks that nothing was left running.
}

func TestNewestEventOfOrderInFlightIsNotProcessed(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.payment.Inject(orderflow.Fault{Op: "refund", Hang: true})
	f.shipping.FailOrder("order-1", saga.Permanent(errNoCourier))
	req := laptop("ada@example.com")
	req.OrderID = "order-1"
	id := f.place(req)
	sagatest.WaitEvent(t, f.sys.Coordinator(), id, saga.EventStepCompensated, 0) // released; the refund hangs

	events, err := f.sys.GetEvents(context.Background(), id)
	require.NoError(t, err)
	require.NotEmpty(t, events)
	last := events[len(events)-1]
	assert.Equal(t, orderflow.EventInventoryReleased, last.Type)
	assert.False(t, last.Processed, "the engine has not acted on the release yet")
	for _, e := range events[:len(events)-1] {
		assert.True(t, e.Processed, "%s", e.Type)
	}
	st, err := f.sys.GetStatus(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, orderflow.StatusCompensating, st.Status)
	assert.Contains(t, st.Error, errNoCourier.Error())
}

// lateGateway charges and then fails to answer in time: the charge
// happened, but the saga only sees a timeout.
type lateGateway struct{ *orderflow.PaymentService }

func (g lateGateway) Charge(ctx context.Context, req orderflow.ChargeRequest) (string, error) {
	if _, err := g.PaymentService.Charge(ctx, req); err != nil {
		return "", err
	}
	<-ctx.Done()
	return "", ctx.Err()
}

func TestTimedOutChargeThatHappenedIsRefunded(t *testing.T) {
	t.Parallel()
	const timeout = 10 * time.Second
	f := setup(t, func(c *orderflow.Config) {
		c.Payment = lateGateway{c.Payment.(*orderflow.PaymentService)}
		c.StepTimeout = timeout
		c.Retry = saga.RetryPolicy{MaxAttempts: 1}
	})
	id := f.place(laptop("ada@example.com"))
	seq := sagatest.WaitEvent(t, f.sys.Coordinator(), id, saga.EventStepSucceeded, 0).Seq // validate
	f.timeOut(id, seq, timeout)

	st := f.wait(id)
	assert.Equal(t, orderflow.StatusFailed, st.Status)
	assert.Equal(t, []history{
		ok(orderflow.EventOrderCreated),
		ok(orderflow.EventOrderValidated),
		fail(orderflow.EventPaymentProcessed),
		undo(orderflow.EventPaymentRefunded), // the outcome was unknown: undone anyway
		undo(orderflow.EventOrderCanceled),
	}, f.events(id))
	_, used := f.payment.Credit("ada@example.com")
	assert.Zero(t, used, "the customer is not left charged for a canceled order")
	charges := f.payment.Charges()
	require.Len(t, charges, 1)
	assert.True(t, charges[0].Refunded)
}
