// Recovery shows orders surviving a crash. It keeps its orders, and the
// bundled services' charges, reservations and shipments, in a directory.
// Run it with -crash and it places a few orders whose shipping never
// answers, then kills itself with SIGKILL while they are in flight; run it
// again and the orders resume where their logs stop and complete, charged
// exactly once:
//
//	go run ./examples/recovery -crash
//	go run ./examples/recovery
//
// Kill it yourself instead (kill -9, or Ctrl-\) at any moment: the next run
// finishes what was acknowledged.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/sagaflow/sagaflow/orderflow"
	"github.com/sagaflow/sagaflow/saga"
)

func main() {
	dir := flag.String("dir", filepath.Join(os.TempDir(), "sagaflow-recovery"), "directory for the journal and the services' state")
	orders := flag.Int("orders", 3, "orders to place")
	crash := flag.Bool("crash", false, "kill this process once the orders are in flight")
	flag.Parse()
	if err := run(context.Background(), os.Stdout, *dir, *orders, *crash); err != nil {
		fmt.Fprintln(os.Stderr, "recovery:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, dir string, orders int, crash bool) error {
	sys, err := orderflow.New(orderflow.Config{
		Dir:    dir,
		Engine: saga.Config{Logger: slog.New(slog.DiscardHandler)},
	})
	if err != nil {
		return err
	}
	defer sys.Shutdown(ctx)

	// What a previous run left in flight resumes at Startup.
	resumed, err := sys.Coordinator().Store().Unfinished(ctx, orderflow.SagaName)
	if err != nil {
		return err
	}
	if err := sys.Startup(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "journal in %s: %d orders to resume\n", dir, len(resumed))
	for _, id := range resumed {
		st, err := sys.Wait(ctx, id)
		if err != nil {
			return err
		}
		charges := 0
		for _, c := range sys.Payment().(*orderflow.PaymentService).Charges() {
			if c.OrderID == id {
				charges++
			}
		}
		fmt.Fprintf(out, "  %s resumed: %s, %d charge\n", id, st.Status, charges)
	}

	shipping := sys.Shipping().(*orderflow.ShippingService)
	if crash {
		shipping.Hang() // the orders wait at shipping when the crash comes
	}
	first := len(sys.Payment().(*orderflow.PaymentService).Charges()) + 1
	var ids []string
	for i := range orders {
		r, err := sys.ProcessOrder(ctx, orderflow.OrderRequest{
			OrderID:  fmt.Sprintf("order-%03d", first+i),
			Customer: orderflow.Customer{Name: "Ada Lovelace", Email: "ada@example.com", Address: "12 St James's Square, London"},
			Items:    []orderflow.Item{{Name: "laptop", Price: 99999, Quantity: 1}},
		})
		if err != nil {
			return err
		}
		ids = append(ids, r.OrderID)
	}
	if crash {
		for _, id := range ids {
			if err := waitForShipping(ctx, sys, id); err != nil {
				return err
			}
		}
		fmt.Fprintf(out, "%d orders paid and reserved, waiting at shipping: crashing now\n", len(ids))
		self, err := os.FindProcess(os.Getpid())
		if err != nil {
			return err
		}
		return self.Kill() // SIGKILL: no Shutdown, no deferred calls
	}
	for _, id := range ids {
		st, err := sys.Wait(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "  %s placed: %s\n", id, st.Status)
	}
	return nil
}

// waitForShipping waits until the order's inventory is reserved, so that
// its next step is shipping.
func waitForShipping(ctx context.Context, sys *orderflow.System, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	w, err := sys.Subscribe(ctx, id)
	if err != nil {
		return err
	}
	defer w.Close()
	for e := range w.Events() {
		if e.Type == orderflow.EventInventoryReserved {
			return nil
		}
	}
	return errors.New("order " + id + " did not reach shipping")
}
