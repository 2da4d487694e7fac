package orderflow_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/orderflow"
)

func newInventory(cfg orderflow.InventoryConfig, products ...orderflow.Product) *orderflow.InventoryService {
	if cfg.Clock == nil {
		cfg.Clock = clock.NewFake(time.Time{})
	}
	s := orderflow.NewInventoryService(cfg)
	for _, p := range products {
		s.AddProduct(p)
	}
	return s
}

func reserveReq(key string, items ...orderflow.Item) orderflow.ReserveRequest {
	return orderflow.ReserveRequest{Key: key, OrderID: "order-" + key, Items: items}
}

func units(name string, quantity int) orderflow.Item {
	return orderflow.Item{Name: name, Price: 100, Quantity: quantity}
}

// assertStock checks the available and held units of each named product.
func assertStock(t *testing.T, s *orderflow.InventoryService, want map[string][2]int) {
	t.Helper()
	for name, w := range want {
		available, held := s.Stock(name)
		assert.Equal(t, w, [2]int{available, held}, "Stock(%q): available, held", name)
	}
}

func TestInventoryCatalog(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newInventory(orderflow.InventoryConfig{},
		orderflow.Product{Name: "laptop", Price: 99999, Stock: 5},
		orderflow.Product{Name: "mouse", Price: 2500, Stock: 0},
	)

	got, err := s.Product(ctx, "laptop")
	require.NoError(t, err)
	assert.Equal(t, orderflow.Product{Name: "laptop", Price: 99999, Stock: 5}, got)
	got, err = s.Product(ctx, "mouse")
	require.NoError(t, err)
	assert.Equal(t, orderflow.Product{Name: "mouse", Price: 2500, Stock: 0}, got)

	_, err = s.Product(ctx, "tablet")
	require.ErrorIs(t, err, orderflow.ErrUnknownProduct)

	assertStock(t, s, map[string][2]int{"laptop": {5, 0}, "mouse": {0, 0}, "tablet": {-1, 0}})

	// AddProduct replaces price and stock.
	s.AddProduct(orderflow.Product{Name: "laptop", Price: 89999, Stock: 7})
	got, err = s.Product(ctx, "laptop")
	require.NoError(t, err)
	assert.Equal(t, orderflow.Product{Name: "laptop", Price: 89999, Stock: 7}, got)
	assertStock(t, s, map[string][2]int{"laptop": {7, 0}})
}

func TestInventoryUnknownProductIsUnlimited(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newInventory(orderflow.InventoryConfig{})

	id, err := s.Reserve(ctx, reserveReq("k1", units("widget", 1_000_000)))
	require.NoError(t, err)
	require.NotEmpty(t, id)
	_, err = s.Reserve(ctx, reserveReq("k2", units("widget", 1_000_000)))
	require.NoError(t, err)
	assertStock(t, s, map[string][2]int{"widget": {-1, 2_000_000}})

	_, err = s.Product(ctx, "widget")
	require.ErrorIs(t, err, orderflow.ErrUnknownProduct, "reserving does not add a product to the catalogue")

	require.NoError(t, s.Release(ctx, undoReq("k1")))
	assertStock(t, s, map[string][2]int{"widget": {-1, 1_000_000}})
}

func TestInventoryEnforceCatalog(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newInventory(orderflow.InventoryConfig{EnforceCatalog: true},
		orderflow.Product{Name: "laptop", Price: 99999, Stock: 5})

	_, err := s.Reserve(ctx, reserveReq("k1", units("widget", 1)))
	require.ErrorIs(t, err, orderflow.ErrUnknownProduct)

	// A known item next to an unknown one is not reserved either.
	_, err = s.Reserve(ctx, reserveReq("k2", units("laptop", 2), units("widget", 1)))
	require.ErrorIs(t, err, orderflow.ErrUnknownProduct)
	assertStock(t, s, map[string][2]int{"laptop": {5, 0}, "widget": {-1, 0}})
	assert.Empty(t, s.Reservations())

	_, err = s.Reserve(ctx, reserveReq("k3", units("laptop", 2)))
	require.NoError(t, err)
	assertStock(t, s, map[string][2]int{"laptop": {3, 2}})
}

func TestInventoryReservationIsAllOrNothing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newInventory(orderflow.InventoryConfig{},
		orderflow.Product{Name: "a", Price: 100, Stock: 5},
		orderflow.Product{Name: "b", Price: 100, Stock: 2},
		orderflow.Product{Name: "c", Price: 100, Stock: 10},
	)

	// b lacks one unit, whether it comes first, in the middle or last.
	for i, items := range [][]orderflow.Item{
		{units("b", 3), units("a", 3), units("c", 1)},
		{units("a", 3), units("b", 3), units("c", 1)},
		{units("a", 3), units("c", 1), units("b", 3)},
	} {
		_, err := s.Reserve(ctx, reserveReq(fmt.Sprint("fail", i), items...))
		require.ErrorIs(t, err, orderflow.ErrInsufficientStock)
		assertStock(t, s, map[string][2]int{"a": {5, 0}, "b": {2, 0}, "c": {10, 0}})
	}
	assert.Empty(t, s.Reservations())

	id, err := s.Reserve(ctx, reserveReq("ok", units("a", 3), units("b", 2), units("c", 1)))
	require.NoError(t, err)
	assertStock(t, s, map[string][2]int{"a": {2, 3}, "b": {0, 2}, "c": {9, 1}})

	res := s.Reservations()
	require.Len(t, res, 1)
	assert.Equal(t, orderflow.Reservation{
		ID: id, Key: "ok", OrderID: "order-ok",
		Items: []orderflow.Item{units("a", 3), units("b", 2), units("c", 1)},
	}, res[0])
}

func TestInventoryStockNeverNegative(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newInventory(orderflow.InventoryConfig{}, orderflow.Product{Name: "a", Price: 100, Stock: 5})

	// Two lines of the same product, each within stock but not together.
	_, err := s.Reserve(ctx, reserveReq("dup", units("a", 3), units("a", 3)))
	require.ErrorIs(t, err, orderflow.ErrInsufficientStock)
	assertStock(t, s, map[string][2]int{"a": {5, 0}})

	_, err = s.Reserve(ctx, reserveReq("k1", units("a", 2), units("a", 3)))
	require.NoError(t, err, "two lines that fit together")
	assertStock(t, s, map[string][2]int{"a": {0, 5}})

	_, err = s.Reserve(ctx, reserveReq("k2", units("a", 1)))
	require.ErrorIs(t, err, orderflow.ErrInsufficientStock)
	assertStock(t, s, map[string][2]int{"a": {0, 5}})

	require.NoError(t, s.Release(ctx, undoReq("k1")))
	assertStock(t, s, map[string][2]int{"a": {5, 0}})
}

// TestInventoryLongRequestsCountRepeatedLines checks requests of up to 16
// lines and longer ones, which count the lines of each product in a map:
// lines of one product add up against its stock, wherever they are.
func TestInventoryLongRequestsCountRepeatedLines(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	for _, lines := range []int{4, 8, 9, 40} { // 7, 15, 17 and 79 lines
		t.Run(fmt.Sprint(2*lines-1, " lines"), func(t *testing.T) {
			s := newInventory(orderflow.InventoryConfig{},
				orderflow.Product{Name: "a", Price: 100, Stock: lines},
				orderflow.Product{Name: "b", Price: 100, Stock: 100},
			)
			// lines-1 lines of one unit of a among lines of b, then one
			// more of a: one too many, and the last line says so.
			items := make([]orderflow.Item, 0, 2*lines)
			for range lines - 1 {
				items = append(items, units("a", 1), units("b", 1))
			}
			_, err := s.Reserve(ctx, reserveReq("over", append(items, units("a", 2))...))
			require.ErrorIs(t, err, orderflow.ErrInsufficientStock)
			assert.ErrorContains(t, err, `2 more of "a" wanted, 1 available`)
			assertStock(t, s, map[string][2]int{"a": {lines, 0}, "b": {100, 0}})

			_, err = s.Reserve(ctx, reserveReq("fits", append(items, units("a", 1))...))
			require.NoError(t, err)
			assertStock(t, s, map[string][2]int{"a": {0, lines}, "b": {100 - (lines - 1), lines - 1}})
		})
	}
}

func TestInventoryRejectsNonPositiveQuantity(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newInventory(orderflow.InventoryConfig{}, orderflow.Product{Name: "a", Price: 100, Stock: 5})
	for i, q := range []int{0, -1, -100} {
		_, err := s.Reserve(ctx, reserveReq(fmt.Sprint("k", i), units("a", 1), units("b", q)))
		require.ErrorIs(t, err, orderflow.ErrInvalidOrder, "quantity %d", q)
	}
	assertStock(t, s, map[string][2]int{"a": {5, 0}, "b": {-1, 0}})
	assert.Empty(t, s.Reservations())
}

func TestInventoryReserveIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newInventory(orderflow.InventoryConfig{}, orderflow.Product{Name: "a", Price: 100, Stock: 5})

	id, err := s.Reserve(ctx, reserveReq("k1", units("a", 3)))
	require.NoError(t, err)
	// Again, though a second reservation would not fit.
	again, err := s.Reserve(ctx, reserveReq("k1", units("a", 3)))
	require.NoError(t, err)
	assert.Equal(t, id, again)
	assertStock(t, s, map[string][2]int{"a": {2, 3}})
	assert.Len(t, s.Reservations(), 1)

	// The same key with other items is refused.
	_, err = s.Reserve(ctx, reserveReq("k1", units("a", 2)))
	require.ErrorIs(t, err, orderflow.ErrIdempotencyKeyReused)
	_, err = s.Reserve(ctx, reserveReq("k1", units("a", 3), units("b", 1)))
	require.ErrorIs(t, err, orderflow.ErrIdempotencyKeyReused)
	assertStock(t, s, map[string][2]int{"a": {2, 3}, "b": {-1, 0}})

	other, err := s.Reserve(ctx, reserveReq("k2", units("a", 2)))
	require.NoError(t, err)
	assert.NotEqual(t, id, other)
}

func TestInventoryRelease(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newInventory(orderflow.InventoryConfig{},
		orderflow.Product{Name: "a", Price: 100, Stock: 5},
		orderflow.Product{Name: "b", Price: 100, Stock: 5},
	)
	_, err := s.Reserve(ctx, reserveReq("k1", units("a", 3), units("b", 1)))
	require.NoError(t, err)
	_, err = s.Reserve(ctx, reserveReq("k2", units("a", 1)))
	require.NoError(t, err)
	assertStock(t, s, map[string][2]int{"a": {1, 4}, "b": {4, 1}})

	require.NoError(t, s.Release(ctx, undoReq("k1")))
	assertStock(t, s, map[string][2]int{"a": {4, 1}, "b": {5, 0}})

	// Releasing again puts nothing back a second time.
	require.NoError(t, s.Release(ctx, undoReq("k1")))
	require.NoError(t, s.Release(ctx, undoReq("k1")))
	assertStock(t, s, map[string][2]int{"a": {4, 1}, "b": {5, 0}})

	byKey := reservationsByKey(s)
	assert.True(t, byKey["k1"].Released)
	assert.False(t, byKey["k1"].Voided)
	assert.False(t, byKey["k2"].Released)

	// A released reservation cannot be made again with its key.
	_, err = s.Reserve(ctx, reserveReq("k1", units("a", 3), units("b", 1)))
	require.ErrorIs(t, err, orderflow.ErrVoided)
	assertStock(t, s, map[string][2]int{"a": {4, 1}, "b": {5, 0}})
}

func TestInventoryReleaseBeforeReserveVoidsKey(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newInventory(orderflow.InventoryConfig{}, orderflow.Product{Name: "a", Price: 100, Stock: 5})

	require.NoError(t, s.Release(ctx, undoReq("k1")), "releasing what was never reserved succeeds")
	assertStock(t, s, map[string][2]int{"a": {5, 0}})

	_, err := s.Reserve(ctx, reserveReq("k1", units("a", 1)))
	require.ErrorIs(t, err, orderflow.ErrVoided)
	assertStock(t, s, map[string][2]int{"a": {5, 0}})

	res := s.Reservations()
	require.Len(t, res, 1)
	assert.Equal(t, "k1", res[0].Key)
	assert.Equal(t, "order-k1", res[0].OrderID)
	assert.True(t, res[0].Voided)
	assert.False(t, res[0].Released)
	assert.Empty(t, res[0].ID)
	assert.Empty(t, res[0].Items)

	require.NoError(t, s.Release(ctx, undoReq("k1")))
	_, err = s.Reserve(ctx, reserveReq("k2", units("a", 5)))
	require.NoError(t, err, "other keys are unaffected")
}

func TestInventoryReservationsAreCopies(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newInventory(orderflow.InventoryConfig{}, orderflow.Product{Name: "a", Price: 100, Stock: 5})
	items := []orderflow.Item{units("a", 2)}
	_, err := s.Reserve(ctx, reserveReq("k1", items...))
	require.NoError(t, err)

	items[0].Quantity = 4 // the caller's slice is not kept
	res := s.Reservations()
	require.Len(t, res, 1)
	res[0].Items[0].Quantity = 5 // nor is the returned one shared
	res[0].Released = true

	res = s.Reservations()
	assert.Equal(t, []orderflow.Item{units("a", 2)}, res[0].Items)
	assert.False(t, res[0].Released)

	require.NoError(t, s.Release(ctx, undoReq("k1")))
	assertStock(t, s, map[string][2]int{"a": {5, 0}})
}

func TestInventoryConcurrentReservationsRespectStock(t *testing.T) {
	t.Parallel()
	const (
		callers = 200
		fits    = 37
	)
	s := newInventory(orderflow.InventoryConfig{},
		orderflow.Product{Name: "a", Price: 100, Stock: fits * 2},
		orderflow.Product{Name: "b", Price: 100, Stock: 1000},
	)

	var succeeded, refused atomic.Int64
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			_, err := s.Reserve(t.Context(), reserveReq(fmt.Sprint("k", i), units("b", 1), units("a", 2)))
			switch {
			case err == nil:
				succeeded.Add(1)
			case assert.ErrorIs(t, err, orderflow.ErrInsufficientStock):
				refused.Add(1)
			}
		})
	}
	wg.Wait()

	assert.EqualValues(t, fits, succeeded.Load())
	assert.EqualValues(t, callers-fits, refused.Load())
	assertStock(t, s, map[string][2]int{"a": {0, fits * 2}, "b": {1000 - fits, fits}})
	assert.Len(t, s.Reservations(), fits)
}

func TestInventoryConcurrentReserveAndRelease(t *testing.T) {
	t.Parallel()
	const n = 100
	s := newInventory(orderflow.InventoryConfig{}, orderflow.Product{Name: "a", Price: 100, Stock: n})

	var wg sync.WaitGroup
	for i := range n {
		key := fmt.Sprint("k", i)
		wg.Go(func() {
			_, err := s.Reserve(t.Context(), reserveReq(key, units("a", 1)))
			if err != nil { // the release came first
				assert.ErrorIs(t, err, orderflow.ErrVoided)
			}
		})
		wg.Go(func() { assert.NoError(t, s.Release(t.Context(), undoReq(key))) })
	}
	wg.Wait()

	assertStock(t, s, map[string][2]int{"a": {n, 0}})
	res := s.Reservations()
	require.Len(t, res, n)
	for _, r := range res {
		assert.True(t, r.Released != r.Voided, "%+v", r)
	}
}

// reservationsByKey indexes s's reservations by idempotency key.
func reservationsByKey(s *orderflow.InventoryService) map[string]orderflow.Reservation {
	out := make(map[string]orderflow.Reservation)
	for _, r := range s.Reservations() {
		out[r.Key] = r
	}
	return out
}
