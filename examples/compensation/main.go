// Compensation shows how orderflow undoes a failed order. Customers have
// credit limits and products have stock; the System checks every request
// against them (EnforceCatalog, RequireRegisteredCustomers). Four orders run
// one after another: one succeeds, one fails at payment (not enough credit),
// one at inventory (not enough stock) and one at shipping (an injected
// fault). For each, the program prints the order's events: what succeeded,
// what failed, and the compensations that undid the earlier steps, newest
// first. A fifth request is invalid and is rejected before anything is
// created. Last, it prints the services' books, which show that every
// failed order was undone: credit given back, stock released, charges
// refunded.
//
//	go run ./examples/compensation
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"

	"github.com/sagaflow/sagaflow/orderflow"
	"github.com/sagaflow/sagaflow/saga"
)

var (
	ada     = orderflow.Customer{Name: "Ada Lovelace", Email: "ada@example.com", Address: "12 St James's Square, London"}
	charles = orderflow.Customer{Name: "Charles Babbage", Email: "charles@example.com", Address: "1 Dorset Street, London"}
	grace   = orderflow.Customer{Name: "Grace Hopper", Email: "grace@example.com", Address: "Arlington, Virginia"}
)

var (
	laptop   = orderflow.Product{Name: "laptop", Price: 99999, Stock: 2}
	mouse    = orderflow.Product{Name: "mouse", Price: 1999, Stock: 10}
	keyboard = orderflow.Product{Name: "keyboard", Price: 4999, Stock: 1}
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "compensation:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) error {
	// The bundled services, set up as a real deployment would be.
	payment := orderflow.NewPaymentService(orderflow.PaymentConfig{RequireRegistration: true})
	payment.SetCreditLimit(ada.Email, 200000)
	payment.SetCreditLimit(charles.Email, 50000)
	inventory := orderflow.NewInventoryService(orderflow.InventoryConfig{EnforceCatalog: true})
	for _, p := range []orderflow.Product{laptop, mouse, keyboard} {
		inventory.AddProduct(p)
	}
	shipping := orderflow.NewShippingService(orderflow.ShippingConfig{})
	shipping.FailOrder("order-4", saga.Permanent(errors.New("no courier serves this address")))

	sys, err := orderflow.New(orderflow.Config{
		Engine:                     saga.Config{Logger: slog.New(slog.DiscardHandler)},
		Payment:                    payment,
		Inventory:                  inventory,
		Shipping:                   shipping,
		EnforceCatalog:             true, // items must be products of inventory, at its price
		RequireRegisteredCustomers: true, // customers must have a credit limit with payment
	})
	if err != nil {
		return err
	}
	if err := sys.Startup(ctx); err != nil {
		return err
	}
	defer func() { _ = sys.Shutdown(ctx) }() // on early returns; a second Shutdown does nothing

	orders := []struct {
		title string
		req   orderflow.OrderRequest
	}{
		{"Ada buys a laptop and a mouse", request("order-1", ada, item(laptop, 1), item(mouse, 1))},
		{"Charles buys a laptop, beyond his credit", request("order-2", charles, item(laptop, 1))},
		{"Ada buys 3 keyboards, 1 in stock", request("order-3", ada, item(keyboard, 3))},
		{"Charles buys a mouse, no courier delivers", request("order-4", charles, item(mouse, 1))},
	}
	for _, o := range orders {
		fmt.Fprintf(out, "%s: %s\n", o.req.OrderID, o.title)
		if err := place(ctx, out, sys, o.req); err != nil {
			return err
		}
	}

	// An invalid request is rejected with every problem, and creates nothing.
	bad := request("order-5", grace, orderflow.Item{Name: "abacus", Price: 500, Quantity: 1}, orderflow.Item{Name: "mouse", Price: 999, Quantity: 1})
	fmt.Fprintf(out, "%s: Grace, unregistered, buys an abacus and a mouse at the wrong price\n", bad.OrderID)
	_, err = sys.ProcessOrder(ctx, bad)
	var verr *orderflow.ValidationError
	if !errors.As(err, &verr) {
		return fmt.Errorf("invalid request accepted: %v", err)
	}
	fmt.Fprintf(out, "  rejected with %d problems: %v\n", len(verr.Problems), err)
	if _, err = sys.GetStatus(ctx, bad.OrderID); !errors.Is(err, orderflow.ErrNotFound) {
		return fmt.Errorf("rejected order exists: %v", err)
	}
	fmt.Fprintf(out, "  nothing created: %v\n\n", err)

	// The services' books after the compensations.
	fmt.Fprintln(out, "credit used:")
	for _, c := range []orderflow.Customer{ada, charles} {
		limit, used := payment.Credit(c.Email)
		fmt.Fprintf(out, "  %-20s %8s of %8s\n", c.Email, used, limit)
	}
	fmt.Fprintln(out, "stock:")
	for _, p := range []orderflow.Product{laptop, mouse, keyboard} {
		available, held := inventory.Stock(p.Name)
		fmt.Fprintf(out, "  %-8s %2d added, %2d available, %d held\n", p.Name, p.Stock, available, held)
	}
	fmt.Fprintln(out, "charges:")
	charges := payment.Charges()
	slices.SortFunc(charges, func(a, b orderflow.Charge) int { return cmp.Compare(a.ID, b.ID) })
	for _, c := range charges {
		fmt.Fprintf(out, "  %s  %s  %8s  %s\n", c.ID, c.OrderID, c.Amount, flag(c.Refunded, "refunded", "charged"))
	}
	fmt.Fprintln(out, "reservations:")
	reservations := inventory.Reservations()
	slices.SortFunc(reservations, func(a, b orderflow.Reservation) int { return cmp.Compare(a.ID, b.ID) })
	for _, r := range reservations {
		fmt.Fprintf(out, "  %s  %s  %s\n", r.ID, r.OrderID, flag(r.Released, "released", "held"))
	}
	fmt.Fprintln(out, "shipments:")
	shipments := shipping.Shipments()
	slices.SortFunc(shipments, func(a, b orderflow.Shipment) int { return cmp.Compare(a.TrackingNumber, b.TrackingNumber) })
	for _, s := range shipments {
		fmt.Fprintf(out, "  %s  %s  %s  to %s\n", s.TrackingNumber, s.OrderID, flag(s.Canceled, "canceled", "booked"), s.Address)
	}

	return sys.Shutdown(ctx)
}

// place submits an order, waits for it to end, and prints its events and
// final status.
func place(ctx context.Context, out io.Writer, sys *orderflow.System, req orderflow.OrderRequest) error {
	if _, err := sys.ProcessOrder(ctx, req); err != nil {
		return err
	}
	watch, err := sys.Subscribe(ctx, req.OrderID)
	if err != nil {
		return err
	}
	for range watch.Events() { // drain: the stream closes when the order ends
	}
	watch.Close()

	events, err := sys.GetEvents(ctx, req.OrderID)
	if err != nil {
		return err
	}
	for _, e := range events {
		switch {
		case !e.Success:
			fmt.Fprintf(out, "  failed  %-18s %v\n", e.Type, e.Data["error"])
		case e.Compensation:
			fmt.Fprintf(out, "  undo    %s\n", e.Type)
		default:
			fmt.Fprintf(out, "  ok      %s\n", e.Type)
		}
	}
	st, err := sys.GetStatus(ctx, req.OrderID)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  status: %s\n\n", st.Status)
	return nil
}

func request(id string, c orderflow.Customer, items ...orderflow.Item) orderflow.OrderRequest {
	return orderflow.OrderRequest{OrderID: id, Customer: c, Items: items}
}

// item is n units of p at its catalogue price.
func item(p orderflow.Product, n int) orderflow.Item {
	return orderflow.Item{Name: p.Name, Price: p.Price, Quantity: n}
}

func flag(set bool, yes, no string) string {
	if set {
		return yes
	}
	return no
}
