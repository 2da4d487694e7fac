package orderflow_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"

	"github.com/sagaflow/sagaflow/orderflow"
	"github.com/sagaflow/sagaflow/saga"
)

// BenchmarkOrder measures one order end to end on the memory store: the
// request validated, the saga run through its four steps, the services
// called. Orders run from parallel goroutines; each waits for its order's
// end through the engine's event hook.
func BenchmarkOrder(b *testing.B) {
	var waiting [1024]chan struct{}
	for i := range waiting {
		waiting[i] = make(chan struct{}, 1)
	}
	sys, err := orderflow.New(orderflow.Config{Engine: saga.Config{
		Store:  saga.NewMemoryStore(saga.MemoryConfig{MaxFinished: 1000}),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Hooks: saga.Hooks{OnEvent: func(e saga.Event) {
			if e.Ends() {
				i, _ := strconv.Atoi(e.SagaID[:len(e.SagaID)-len(".x")])
				waiting[i%len(waiting)] <- struct{}{}
			}
		}},
	}})
	if err != nil {
		b.Fatal(err)
	}
	if err := sys.Startup(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer sys.Shutdown(context.Background())
	req := orderflow.OrderRequest{
		Customer: orderflow.Customer{Name: "Ada", Email: "ada@example.com", Address: "1 Main St"},
		Items:    []orderflow.Item{{Name: "laptop", Price: 99999, Quantity: 1}, {Name: "mouse", Price: 2500, Quantity: 2}},
	}
	next := make(chan int, len(waiting)) // a waiting slot per goroutine
	for i := range len(waiting) {
		next <- i
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		slot := <-next
		for i := 0; pb.Next(); i++ {
			r := req
			r.OrderID = strconv.Itoa(slot+len(waiting)*i) + ".x"
			if _, err := sys.ProcessOrder(context.Background(), r); err != nil {
				b.Error(err)
				return
			}
			<-waiting[slot]
		}
	})
}

// BenchmarkOrderJSON measures the encoding of an order, which the saga
// stores after every step, as the engine makes it: appended to a buffer.
func BenchmarkOrderJSON(b *testing.B) {
	o := orderflow.Order{
		ID:       "0f8fad5b-d9cb-469f-a165-70867728950e",
		Customer: orderflow.Customer{Name: "Ada Lovelace", Email: "ada@example.com", Address: "12 St James's Square, London"},
		Items:    []orderflow.Item{{Name: "laptop", Price: 99999, Quantity: 1}, {Name: "mouse", Price: 2500, Quantity: 2}},
		Total:    104999,
		Status:   orderflow.StatusInventoryReserved,
		ChargeID: "CH-000042", ReservationID: "RSV-000042",
	}
	b.ReportAllocs()
	buf := make([]byte, 0, 1024)
	for b.Loop() {
		if _, err := o.AppendJSON(buf); err != nil {
			b.Fatal(err)
		}
	}
}
