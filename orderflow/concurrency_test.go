package orderflow_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/orderflow"
	"github.com/sagaflow/sagaflow/saga"
)

func TestConcurrentOrders(t *testing.T) {
	t.Parallel()
	for _, n := range []int{100, 10_000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			if testing.Short() && n > 100 {
				t.Skip("short mode")
			}
			concurrentOrders(t, n)
		})
	}
}

// concurrentOrders places n orders at once from many goroutines, with
// customers whose credit runs out, products whose stock runs out and
// orders that cannot ship, and checks that every order ends, none is
// corrupted, and the services' books balance.
func concurrentOrders(t *testing.T, n int) {
	f := setup(t, func(c *orderflow.Config) {
		c.Engine.WaitForCapacity = true
		c.Engine.Workers = 64
	})
	const customers = 20
	for i := range customers {
		// Each customer can afford about half of their orders.
		f.payment.SetCreditLimit(fmt.Sprintf("c%d@example.com", i), orderflow.Money(n/customers/2)*3000)
	}
	f.inventory.AddProduct(orderflow.Product{Name: "mouse", Price: 2500, Stock: n / 3})
	f.inventory.AddProduct(orderflow.Product{Name: "cable", Price: 500, Stock: n})

	requests := make([]orderflow.OrderRequest, n)
	for i := range requests {
		requests[i] = orderflow.OrderRequest{
			OrderID:  fmt.Sprintf("order-%05d", i),
			Customer: orderflow.Customer{Name: "Customer", Email: fmt.Sprintf("c%d@example.com", i%customers), Address: "1 Main St"},
			Items: []orderflow.Item{
				{Name: "mouse", Price: 2500, Quantity: 1},
				{Name: "cable", Price: 500, Quantity: 1 + i%2},
			},
		}
		if i%10 == 7 {
			f.shipping.FailOrder(requests[i].OrderID, saga.Permanent(errNoCourier))
		}
	}

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < n; i += 16 {
				if _, err := f.sys.ProcessOrder(context.Background(), requests[i]); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	orders := make(map[string]orderflow.OrderStatus, n)
	counts := map[orderflow.Status]int{}
	for i, req := range requests {
		st := f.wait(req.OrderID)
		require.True(t, st.Status.Terminal(), "%s is %v", req.OrderID, st.Status)
		want := orderflow.Money(2500 + 500*(1+i%2))
		require.Equal(t, want, st.Total, "%s total", req.OrderID)
		require.Equal(t, req.Customer, st.Customer)
		if i%10 == 7 {
			require.Equal(t, orderflow.StatusFailed, st.Status, "%s cannot ship", req.OrderID)
		}
		orders[req.OrderID] = st
		counts[st.Status]++
	}
	t.Logf("%d orders: %v", n, counts)
	assert.NotZero(t, counts[orderflow.StatusCompleted])
	assert.NotZero(t, counts[orderflow.StatusFailed])
	f.ledger(orders)

	// Stock sold plus stock left is the stock there was.
	left, held := f.inventory.Stock("mouse")
	assert.Equal(t, n/3, left+held)
	assert.GreaterOrEqual(t, left, 0)
	h := f.sys.Health(context.Background())
	assert.Equal(t, counts[orderflow.StatusCompleted], h.Completed)
	assert.Equal(t, counts[orderflow.StatusFailed], h.Compensated)
	assert.Zero(t, h.InFlight)
}
