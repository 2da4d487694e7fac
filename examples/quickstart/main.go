// Quickstart runs a small order saga on sagaflow's engine with the default
// in-memory store: it prints each event of one order as it happens, then
// runs a few more orders, one of which fails at shipping and is undone.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/sagaflow/sagaflow/saga"
)

// Order is the saga's state: what every step can read and write.
type Order struct {
	Item     string `json:"item"`
	Cents    int64  `json:"cents"`
	ChargeID string `json:"charge_id,omitempty"`
	Tracking string `json:"tracking,omitempty"`
}

var errNoCourier = errors.New("no courier serves this address")

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) error {
	def, err := saga.NewDefinition("order", []saga.Step[Order]{
		{Name: "validate", Action: validate},
		{Name: "payment", Action: charge, Compensate: refund, Breaker: "payment"},
		{Name: "inventory", Action: reserve, Compensate: release},
		{Name: "shipping", Action: ship, Compensate: cancelShipment},
	}, saga.WithTimeout(time.Minute))
	if err != nil {
		return err
	}
	c, err := saga.New(def, saga.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	if err := c.Startup(ctx); err != nil {
		return err
	}

	// One order, event by event.
	sub := c.Subscribe(saga.SubscribeOptions{SagaID: "order-1"})
	if _, err := c.Start(ctx, Order{Item: "laptop", Cents: 99999}, saga.WithID("order-1")); err != nil {
		return err
	}
	for e := range sub.Events() {
		fmt.Fprintln(out, strings.TrimSpace(fmt.Sprintf("%-16s %s", e.Type, e.Step)))
		if e.Ends() {
			break
		}
	}
	sub.Close()

	// A few more at once; the one going to "nowhere" cannot ship.
	done := c.Subscribe(saga.SubscribeOptions{})
	items := []string{"mouse", "keyboard", "nowhere", "monitor"}
	for i, item := range items {
		if _, err := c.Start(ctx, Order{Item: item, Cents: 1000}, saga.WithID(fmt.Sprintf("order-%d", i+2))); err != nil {
			return err
		}
	}
	for ended := 0; ended < len(items); {
		if e := <-done.Events(); e.Ends() {
			ended++
		}
	}
	done.Close()
	for i := range items {
		id := fmt.Sprintf("order-%d", i+2)
		snap, err := c.Get(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, strings.TrimSpace(fmt.Sprintf("%s %-9s %-11s %s", id, snap.State.Item, snap.Status, snap.LastError)))
	}

	fmt.Fprintln(out, "health:", c.Health(ctx).State)
	if err := c.Shutdown(ctx); err != nil {
		return err
	}
	fmt.Fprintln(out, "health:", c.Health(ctx).State)
	return nil
}

func validate(_ context.Context, o *Order) error {
	if o.Cents <= 0 {
		return saga.Permanent(fmt.Errorf("price must be positive, got %d", o.Cents))
	}
	return nil
}

func charge(ctx context.Context, o *Order) error {
	info, _ := saga.Info(ctx)
	o.ChargeID = "ch_" + info.IdempotencyKey // a real gateway dedupes on this key
	return nil
}

func refund(_ context.Context, o *Order) error { o.ChargeID = ""; return nil }

func reserve(context.Context, *Order) error { return nil }

func release(context.Context, *Order) error { return nil }

func ship(_ context.Context, o *Order) error {
	if o.Item == "nowhere" {
		return saga.Permanent(errNoCourier)
	}
	o.Tracking = "TRK-" + o.Item
	return nil
}

func cancelShipment(_ context.Context, o *Order) error { o.Tracking = ""; return nil }
