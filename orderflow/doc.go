// Package orderflow is a complete e-commerce order saga built on sagaflow's
// engine: validate → payment → inventory → shipping, and on failure the
// refund, release and cancellation of what had been done.
//
// A [System] takes orders and runs each one as a saga:
//
//	sys, err := orderflow.New(orderflow.Config{}) // memory store, real clock, bundled services
//	if err != nil { ... }
//	if err := sys.Startup(ctx); err != nil { ... }
//	defer sys.Shutdown(ctx)
//
//	r, err := sys.ProcessOrder(ctx, orderflow.OrderRequest{
//		Customer: orderflow.Customer{Name: "Ada", Email: "ada@example.com", Address: "1 Main St"},
//		Items:    []orderflow.Item{{Name: "laptop", Price: 99999, Quantity: 1}},
//	})
//	st, err := sys.GetStatus(ctx, r.OrderID)     // pending … completed, or failed
//	events, err := sys.GetEvents(ctx, r.OrderID) // ORDER_CREATED … ORDER_COMPLETED
//
// ProcessOrder returns as soon as the order is stored; the saga runs on the
// engine's workers. Money is [Money], an integer number of cents that reads
// and writes exact decimals. Invalid requests get a [*ValidationError]
// naming every bad field, and create nothing.
//
// # Statuses and events
//
// An order moves pending → validated → payment_processed →
// inventory_reserved → shipped → completed, or, when a step fails, to
// compensating and then failed ([Status.CanTransition] is the table).
// [System.GetEvents] tells its history in domain terms: ORDER_CREATED,
// ORDER_VALIDATED, PAYMENT_PROCESSED, INVENTORY_RESERVED, ORDER_SHIPPED and
// ORDER_COMPLETED for a good order; for one that fails, the failed step's
// event with Success false, the compensations newest first
// (INVENTORY_RELEASED, PAYMENT_REFUNDED; the failed step's own, such as
// SHIPMENT_CANCELED, first when it timed out rather than being refused) and
// ORDER_CANCELED.
// [System.Subscribe] streams the same events live.
//
// # Services
//
// Payment, inventory and shipping are interfaces ([PaymentGateway],
// [Inventory], [Shipping]) that a service implements for its real
// providers. Each operation carries an idempotency key, "<orderID>/<step>",
// stable across retries and restarts, so a provider that deduplicates on it
// applies every charge, reservation and shipment exactly once. The bundled
// in-memory implementations ([PaymentService], [InventoryService],
// [ShippingService]) behave that way, keep credit limits and stock, and
// take injected faults ([Faults]) for tests and demonstrations.
package orderflow
