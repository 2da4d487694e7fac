// Quickstart runs orderflow, sagaflow's order saga (validate → payment →
// inventory → shipping), on the default in-memory store and the bundled
// in-memory services. It places one order and prints its events as they
// happen, then places ten orders at once, one of which cannot ship and is
// compensated (its stock released and its payment refunded), and ends with
// the system's health before and after Shutdown.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/sagaflow/sagaflow/orderflow"
	"github.com/sagaflow/sagaflow/saga"
)

var ada = orderflow.Customer{Name: "Ada Lovelace", Email: "ada@example.com", Address: "12 St James's Square, London"}

// products are what the ten concurrent orders buy, one each in turn.
var products = []orderflow.Item{
	{Name: "mouse", Price: 1999, Quantity: 1},
	{Name: "keyboard", Price: 4999, Quantity: 1},
	{Name: "monitor", Price: 18900, Quantity: 1},
	{Name: "headset", Price: 7950, Quantity: 1},
	{Name: "webcam", Price: 5900, Quantity: 1},
}

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) error {
	// The bundled shipping service, so that we can inject a fault into it:
	// no courier will take order-07.
	shipping := orderflow.NewShippingService(orderflow.ShippingConfig{})
	shipping.FailOrder("order-07", saga.Permanent(errors.New("no courier serves this address")))

	sys, err := orderflow.New(orderflow.Config{
		Engine:   saga.Config{Logger: slog.New(slog.DiscardHandler)},
		Shipping: shipping,
	})
	if err != nil {
		return err
	}
	if err := sys.Startup(ctx); err != nil {
		return err
	}
	defer func() { _ = sys.Shutdown(ctx) }() // on early returns; a second Shutdown does nothing

	// One order, event by event.
	receipt, err := sys.ProcessOrder(ctx, orderflow.OrderRequest{
		Customer: ada,
		Items:    []orderflow.Item{{Name: "laptop", Price: 99999, Quantity: 1}},
	})
	if err != nil {
		return err
	}
	id := receipt.OrderID
	fmt.Fprintf(out, "order %s: %s\n", id, receipt.Message)
	watch, err := sys.Subscribe(ctx, id)
	if err != nil {
		return err
	}
	defer watch.Close()
	for e := range watch.Events() { // closed after the order's last event
		fmt.Fprintf(out, "  %-18s %-9s %s\n", e.Type, e.Service, summary(e.Data))
	}
	st, err := sys.GetStatus(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "order %s: %s, total %s\n\n", id, st.Status, st.Total)

	// Ten orders at once, each from its own goroutine.
	statuses := make([]orderflow.OrderStatus, 10)
	errs := make([]error, len(statuses))
	var wg sync.WaitGroup
	for i := range statuses {
		wg.Go(func() {
			statuses[i], errs[i] = place(ctx, sys, orderflow.OrderRequest{
				OrderID:  fmt.Sprintf("order-%02d", i+1),
				Customer: ada,
				Items:    []orderflow.Item{products[i%len(products)]},
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, st := range statuses { // in order of ID
		line := fmt.Sprintf("%s  %-8s  %-9s  %6s  %s", st.OrderID, st.Items[0].Name, st.Status, st.Total, st.Error)
		fmt.Fprintln(out, strings.TrimSpace(line))
		if st.Status == orderflow.StatusFailed {
			if err := printUndo(ctx, out, sys, st.OrderID); err != nil {
				return err
			}
		}
	}

	h := sys.Health(ctx)
	fmt.Fprintf(out, "\nhealth: %s (breakers: payment %s, inventory %s, shipping %s)\n", h.State,
		h.Services["payment"].Breaker, h.Services["inventory"].Breaker, h.Services["shipping"].Breaker)
	if err := sys.Shutdown(ctx); err != nil {
		return err
	}
	h = sys.Health(ctx) // Shutdown waited for every order, so the counts are final
	fmt.Fprintf(out, "health: %s (%d orders completed, %d compensated)\n", h.State, h.Completed, h.Compensated)
	return nil
}

// place submits an order, waits for it to end and returns its status.
func place(ctx context.Context, sys *orderflow.System, req orderflow.OrderRequest) (orderflow.OrderStatus, error) {
	receipt, err := sys.ProcessOrder(ctx, req)
	if err != nil {
		return orderflow.OrderStatus{}, err
	}
	watch, err := sys.Subscribe(ctx, receipt.OrderID)
	if err != nil {
		return orderflow.OrderStatus{}, err
	}
	for range watch.Events() { // drain: the stream closes when the order ends
	}
	watch.Close()
	return sys.GetStatus(ctx, receipt.OrderID)
}

// printUndo prints what undid a failed order: its compensation events.
func printUndo(ctx context.Context, out io.Writer, sys *orderflow.System, id string) error {
	events, err := sys.GetEvents(ctx, id)
	if err != nil {
		return err
	}
	var undone []string
	for _, e := range events {
		if e.Compensation {
			undone = append(undone, string(e.Type))
		}
	}
	fmt.Fprintf(out, "          undone by %s\n", strings.Join(undone, ", "))
	return nil
}

// summary writes an event's data as sorted key=value pairs, quoting values
// that contain spaces.
func summary(data map[string]any) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(data)) {
		v := fmt.Sprint(data[k])
		if strings.Contains(v, " ") {
			v = strconv.Quote(v)
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k + "=" + v)
	}
	return b.String()
}
