package saga_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/sagaflow/sagaflow/saga"
)

// A trip is booked in three steps; the car rental fails for good, so the
// hotel and the flight are cancelled, newest first.
func Example() {
	type trip struct {
		Flight, Hotel, Car string
	}
	step := func(name string, fail bool) saga.Step[trip] {
		return saga.Step[trip]{
			Name: name,
			Action: func(ctx context.Context, t *trip) error {
				if fail {
					return saga.Permanent(errors.New("no cars left"))
				}
				info, _ := saga.Info(ctx)
				fmt.Println("book", name, "key", info.IdempotencyKey)
				return nil
			},
			Compensate: func(ctx context.Context, t *trip) error {
				fmt.Println("cancel", name)
				return nil
			},
		}
	}
	def, err := saga.NewDefinition("trip", []saga.Step[trip]{
		step("flight", false), step("hotel", false), step("car", true),
	})
	if err != nil {
		panic(err)
	}
	c, err := saga.New(def, saga.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := c.Startup(ctx); err != nil {
		panic(err)
	}
	defer c.Shutdown(ctx)

	sub := c.Subscribe(saga.SubscribeOptions{SagaID: "trip-1"})
	defer sub.Close()
	if _, err := c.Start(ctx, trip{}, saga.WithID("trip-1")); err != nil {
		panic(err)
	}
	for e := range sub.Events() {
		if e.Ends() {
			break
		}
	}
	snap, _ := c.Get(ctx, "trip-1")
	fmt.Println(snap.Status, "after", snap.Step+":", snap.LastError)
	// Output:
	// book flight key trip-1/flight
	// book hotel key trip-1/hotel
	// cancel hotel
	// cancel flight
	// compensated after car: no cars left
}

func ExampleDefinition_Mermaid() {
	noop := func(context.Context, *struct{}) error { return nil }
	def, _ := saga.NewDefinition("pay", []saga.Step[struct{}]{
		{Name: "charge", Action: noop, Compensate: noop},
		{Name: "notify", Action: noop},
	})
	fmt.Print(def.Mermaid())
	// Output:
	// flowchart LR
	//     start([start])
	//     s0["charge"]
	//     s1["notify"]
	//     completed([completed])
	//     c0["undo charge"]
	//     compensated([compensated])
	//     start --> s0
	//     s0 --> s1
	//     s1 --> completed
	//     s0 -. fails .-> c0
	//     s0 -. refused .-> compensated
	//     s1 -. fails .-> c0
	//     c0 -.-> compensated
}
