package orderflow_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/orderflow"
)

func TestServicesKeepTheirStateInAFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	path := func(name string) string { return filepath.Join(dir, name) }

	pay, err := orderflow.OpenPaymentService(path("payment.log"), orderflow.PaymentConfig{})
	require.NoError(t, err)
	require.NoError(t, pay.SetCreditLimit("ada@example.com", 5000))
	id, err := pay.Charge(ctx, chargeReq("k1", "ada@example.com", 3000))
	require.NoError(t, err)
	_, err = pay.Charge(ctx, chargeReq("k2", "ada@example.com", 1000))
	require.NoError(t, err)
	require.NoError(t, pay.Refund(ctx, orderflow.UndoRequest{Key: "k2"}))
	require.NoError(t, pay.Refund(ctx, orderflow.UndoRequest{Key: "never-charged"}))
	require.NoError(t, pay.Close())

	inv, err := orderflow.OpenInventoryService(path("inventory.log"), orderflow.InventoryConfig{})
	require.NoError(t, err)
	require.NoError(t, inv.AddProduct(orderflow.Product{Name: "pen", Price: 100, Stock: 10}))
	rid, err := inv.Reserve(ctx, orderflow.ReserveRequest{Key: "r1", Items: []orderflow.Item{{Name: "pen", Price: 100, Quantity: 4}}})
	require.NoError(t, err)
	require.NoError(t, inv.Close())

	ship, err := orderflow.OpenShippingService(path("shipping.log"), orderflow.ShippingConfig{})
	require.NoError(t, err)
	tracking, err := ship.CreateShipment(ctx, orderflow.ShipmentRequest{Key: "s1"})
	require.NoError(t, err)
	require.NoError(t, ship.CancelShipment(ctx, orderflow.UndoRequest{Key: "s1"}))
	require.NoError(t, ship.Close())

	// Reopened, each service remembers, and keeps deduplicating by key.
	pay, err = orderflow.OpenPaymentService(path("payment.log"), orderflow.PaymentConfig{})
	require.NoError(t, err)
	defer pay.Close()
	limit, used := pay.Credit("ada@example.com")
	assert.Equal(t, orderflow.Money(5000), limit)
	assert.Equal(t, orderflow.Money(3000), used)
	again, err := pay.Charge(ctx, chargeReq("k1", "ada@example.com", 3000))
	require.NoError(t, err)
	assert.Equal(t, id, again, "the first charge's answer")
	_, err = pay.Charge(ctx, chargeReq("never-charged", "ada@example.com", 10))
	assert.ErrorIs(t, err, orderflow.ErrVoided)
	next, err := pay.Charge(ctx, chargeReq("k3", "ada@example.com", 500))
	require.NoError(t, err)
	assert.Equal(t, "CH-000003", next, "IDs continue")
	assert.Len(t, pay.Charges(), 4)

	inv, err = orderflow.OpenInventoryService(path("inventory.log"), orderflow.InventoryConfig{})
	require.NoError(t, err)
	defer inv.Close()
	available, held := inv.Stock("pen")
	assert.Equal(t, 6, available)
	assert.Equal(t, 4, held)
	again, err = inv.Reserve(ctx, orderflow.ReserveRequest{Key: "r1", Items: []orderflow.Item{{Name: "pen", Price: 100, Quantity: 4}}})
	require.NoError(t, err)
	assert.Equal(t, rid, again)

	ship, err = orderflow.OpenShippingService(path("shipping.log"), orderflow.ShippingConfig{})
	require.NoError(t, err)
	defer ship.Close()
	shipments := ship.Shipments()
	require.Len(t, shipments, 1)
	assert.Equal(t, tracking, shipments[0].TrackingNumber)
	assert.True(t, shipments[0].Canceled)
}

func TestServiceFileTornTailIsCutAndDamageRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "payment.log")
	pay, err := orderflow.OpenPaymentService(path, orderflow.PaymentConfig{})
	require.NoError(t, err)
	_, err = pay.Charge(ctx, chargeReq("k1", "ada@example.com", 3000))
	require.NoError(t, err)
	_, err = pay.Charge(ctx, chargeReq("k2", "ada@example.com", 1000))
	require.NoError(t, err)
	require.NoError(t, pay.Close())
	whole, err := os.ReadFile(path)
	require.NoError(t, err)
	firstLine := bytes.IndexByte(whole, '\n') + 1

	// A crash in the middle of writing the second change: every cut of it
	// leaves exactly the first.
	for cut := firstLine; cut < len(whole); cut++ {
		require.NoError(t, os.WriteFile(path, whole[:cut], 0o644))
		pay, err := orderflow.OpenPaymentService(path, orderflow.PaymentConfig{})
		require.NoError(t, err, "cut at %d", cut)
		_, used := pay.Credit("ada@example.com")
		assert.Equal(t, orderflow.Money(3000), used, "cut at %d", cut)
		_, err = pay.Charge(ctx, chargeReq("k2", "ada@example.com", 1000)) // and it can go on
		require.NoError(t, err)
		require.NoError(t, pay.Close())
		pay, err = orderflow.OpenPaymentService(path, orderflow.PaymentConfig{})
		require.NoError(t, err)
		_, used = pay.Credit("ada@example.com")
		assert.Equal(t, orderflow.Money(4000), used, "cut at %d, then appended", cut)
		require.NoError(t, pay.Close())
	}

	// Damage before the last line is not a torn tail.
	damaged := append([]byte{}, whole...)
	damaged[20] ^= 1
	require.NoError(t, os.WriteFile(path, damaged, 0o644))
	_, err = orderflow.OpenPaymentService(path, orderflow.PaymentConfig{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "offset 0")
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, damaged, after, "the damaged file is left for inspection")
}

func TestServicesForgetKeysAfterKeepFor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := clock.NewFake(time.Time{})
	pay := orderflow.NewPaymentService(orderflow.PaymentConfig{Clock: clk, KeepFor: time.Minute})
	inv := orderflow.NewInventoryService(orderflow.InventoryConfig{Clock: clk, KeepFor: time.Minute})
	ship := orderflow.NewShippingService(orderflow.ShippingConfig{Clock: clk, KeepFor: time.Minute})
	items := []orderflow.Item{{Name: "pen", Price: 100, Quantity: 1}}

	first, err := pay.Charge(ctx, chargeReq("old", "ada@example.com", 100))
	require.NoError(t, err)
	_, err = inv.Reserve(ctx, orderflow.ReserveRequest{Key: "old", Items: items})
	require.NoError(t, err)
	_, err = ship.CreateShipment(ctx, orderflow.ShipmentRequest{Key: "old"})
	require.NoError(t, err)

	clk.Advance(30 * time.Second) // within the window: still deduplicated
	again, err := pay.Charge(ctx, chargeReq("old", "ada@example.com", 100))
	require.NoError(t, err)
	assert.Equal(t, first, again)

	clk.Advance(time.Minute) // past it: the next record sweeps the old key out
	_, err = pay.Charge(ctx, chargeReq("new", "ada@example.com", 100))
	require.NoError(t, err)
	_, err = inv.Reserve(ctx, orderflow.ReserveRequest{Key: "new", Items: items})
	require.NoError(t, err)
	_, err = ship.CreateShipment(ctx, orderflow.ShipmentRequest{Key: "new"})
	require.NoError(t, err)
	assert.Len(t, pay.Charges(), 1)
	assert.Len(t, inv.Reservations(), 1)
	assert.Len(t, ship.Shipments(), 1)
	_, used := pay.Credit("ada@example.com")
	assert.Equal(t, orderflow.Money(200), used, "forgetting a key keeps the credit it used")
	_, held := inv.Stock("pen")
	assert.Equal(t, 2, held)

	forever := orderflow.NewPaymentService(orderflow.PaymentConfig{Clock: clk})
	_, err = forever.Charge(ctx, chargeReq("k", "ada@example.com", 100))
	require.NoError(t, err)
	clk.Advance(1000 * time.Hour)
	_, err = forever.Charge(ctx, chargeReq("k2", "ada@example.com", 100))
	require.NoError(t, err)
	assert.Len(t, forever.Charges(), 2, "KeepFor 0 remembers forever")
}

func TestServicesForgetKeysBeyondKeepLast(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pay := orderflow.NewPaymentService(orderflow.PaymentConfig{KeepLast: 2})
	inv := orderflow.NewInventoryService(orderflow.InventoryConfig{KeepLast: 2})
	ship := orderflow.NewShippingService(orderflow.ShippingConfig{KeepLast: 2})
	items := []orderflow.Item{{Name: "pen", Price: 100, Quantity: 1}}
	book := func(key string) {
		t.Helper()
		_, err := pay.Charge(ctx, chargeReq(key, "ada@example.com", 100))
		require.NoError(t, err)
		_, err = inv.Reserve(ctx, orderflow.ReserveRequest{Key: key, Items: items})
		require.NoError(t, err)
		_, err = ship.CreateShipment(ctx, orderflow.ShipmentRequest{Key: key})
		require.NoError(t, err)
	}

	book("a")
	first, err := pay.Charge(ctx, chargeReq("a", "ada@example.com", 100))
	require.NoError(t, err)
	book("b")
	again, err := pay.Charge(ctx, chargeReq("a", "ada@example.com", 100))
	require.NoError(t, err)
	assert.Equal(t, first, again, "within the last two: still deduplicated")

	book("c") // the third key pushes the first out
	for _, keys := range [][]string{
		keysOf(pay.Charges(), func(c orderflow.Charge) string { return c.Key }),
		keysOf(inv.Reservations(), func(r orderflow.Reservation) string { return r.Key }),
		keysOf(ship.Shipments(), func(s orderflow.Shipment) string { return s.Key }),
	} {
		assert.ElementsMatch(t, []string{"b", "c"}, keys)
	}
	_, used := pay.Credit("ada@example.com")
	assert.Equal(t, orderflow.Money(300), used, "forgetting a key keeps the credit it used")

	// An undo of a forgotten key finds nothing to undo: it voids the key.
	require.NoError(t, pay.Refund(ctx, orderflow.UndoRequest{Key: "a"}))
	_, used = pay.Credit("ada@example.com")
	assert.Equal(t, orderflow.Money(300), used)
	_, err = pay.Charge(ctx, chargeReq("a", "ada@example.com", 100))
	assert.ErrorIs(t, err, orderflow.ErrVoided)
}

func keysOf[T any](records []T, key func(T) string) []string {
	var keys []string
	for _, r := range records {
		keys = append(keys, key(r))
	}
	return keys
}

// The files of services written before stay readable, and new ones are
// written the same way: every kind of change, as a line of the file.
func TestServiceFilesKeepTheirFormat(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	path := func(name string) string { return filepath.Join(dir, name) }

	pay, err := orderflow.OpenPaymentService(path("payment.log"), orderflow.PaymentConfig{})
	require.NoError(t, err)
	require.NoError(t, pay.SetCreditLimit("ada@example.com", 5000))
	_, err = pay.Charge(ctx, orderflow.ChargeRequest{Key: "k1", OrderID: "o1", Customer: orderflow.Customer{Email: "ada@example.com"}, Amount: 3000})
	require.NoError(t, err)
	require.NoError(t, pay.Refund(ctx, orderflow.UndoRequest{Key: "k1", OrderID: "o1"}))
	require.NoError(t, pay.Refund(ctx, orderflow.UndoRequest{Key: "k2", OrderID: "o2"}))
	require.NoError(t, pay.Close())

	inv, err := orderflow.OpenInventoryService(path("inventory.log"), orderflow.InventoryConfig{})
	require.NoError(t, err)
	require.NoError(t, inv.AddProduct(orderflow.Product{Name: "pen", Price: 100, Stock: 10}))
	_, err = inv.Reserve(ctx, orderflow.ReserveRequest{Key: "r1", OrderID: "o1",
		Items: []orderflow.Item{{Name: "pen", Price: 100, Quantity: 4}, {Name: "ink", Price: 5, Quantity: 1}}})
	require.NoError(t, err)
	require.NoError(t, inv.Release(ctx, orderflow.UndoRequest{Key: "r1", OrderID: "o1"}))
	require.NoError(t, inv.Release(ctx, orderflow.UndoRequest{Key: "r2", OrderID: "o2"}))
	require.NoError(t, inv.Close())

	ship, err := orderflow.OpenShippingService(path("shipping.log"), orderflow.ShippingConfig{})
	require.NoError(t, err)
	_, err = ship.CreateShipment(ctx, orderflow.ShipmentRequest{Key: "s1", OrderID: "o1", Customer: orderflow.Customer{Address: "1 Main St"}})
	require.NoError(t, err)
	require.NoError(t, ship.CancelShipment(ctx, orderflow.UndoRequest{Key: "s1", OrderID: "o1"}))
	require.NoError(t, ship.CancelShipment(ctx, orderflow.UndoRequest{Key: "s2", OrderID: "o2"}))
	require.NoError(t, ship.Close())

	for name, want := range map[string]string{
		"payment.log": `0ad0d18d {"op":"limit","email":"ada@example.com","limit":50.00}
6a8d4388 {"op":"charge","charge":{"id":"CH-000001","key":"k1","order_id":"o1","email":"ada@example.com","amount":30.00,"refunded":false}}
ca371ac7 {"op":"refund","key":"k1"}
c2618ab2 {"op":"void","key":"k2","order":"o2"}
`,
		"inventory.log": `45b4674b {"op":"product","product":{"name":"pen","price":1.00,"stock":10}}
1102bb4a {"op":"reserve","reservation":{"id":"RSV-000001","key":"r1","order_id":"o1","items":[{"name":"pen","price":1.00,"quantity":4},{"name":"ink","price":0.05,"quantity":1}],"released":false}}
83211c62 {"op":"release","key":"r1"}
856b3132 {"op":"void","key":"r2","order":"o2"}
`,
		"shipping.log": `39626a48 {"op":"ship","shipment":{"tracking_number":"TRK-000001","key":"s1","order_id":"o1","address":"1 Main St","canceled":false}}
1771bb35 {"op":"cancel","key":"s1"}
da8fed6d {"op":"void","key":"s2","order":"o2"}
`,
	} {
		got, err := os.ReadFile(path(name))
		require.NoError(t, err)
		assert.Equal(t, want, string(got), name)
	}

	// Read back, they give the same books.
	pay, err = orderflow.OpenPaymentService(path("payment.log"), orderflow.PaymentConfig{})
	require.NoError(t, err)
	defer pay.Close()
	assert.Equal(t, []orderflow.Charge{
		{Key: "k2", OrderID: "o2", Voided: true},
		{ID: "CH-000001", Key: "k1", OrderID: "o1", Email: "ada@example.com", Amount: 3000, Refunded: true},
	}, pay.Charges())
	inv, err = orderflow.OpenInventoryService(path("inventory.log"), orderflow.InventoryConfig{})
	require.NoError(t, err)
	defer inv.Close()
	assert.Equal(t, []orderflow.Reservation{
		{Key: "r2", OrderID: "o2", Voided: true},
		{ID: "RSV-000001", Key: "r1", OrderID: "o1", Released: true,
			Items: []orderflow.Item{{Name: "pen", Price: 100, Quantity: 4}, {Name: "ink", Price: 5, Quantity: 1}}},
	}, inv.Reservations())
	ship, err = orderflow.OpenShippingService(path("shipping.log"), orderflow.ShippingConfig{})
	require.NoError(t, err)
	defer ship.Close()
	assert.Equal(t, []orderflow.Shipment{
		{Key: "s2", OrderID: "o2", Voided: true},
		{TrackingNumber: "TRK-000001", Key: "s1", OrderID: "o1", Address: "1 Main St", Canceled: true},
	}, ship.Shipments())
}
