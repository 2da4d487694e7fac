package saga_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/sagaflow/sagaflow/saga"
)

// benchOrder is the state of the benchmark saga.
type benchOrder struct {
	Total    int64 `json:"total"`
	Charged  int64 `json:"charged"`
	Reserved int   `json:"reserved"`
	Shipment int   `json:"shipment"`
}

// The four steps of the benchmark saga, small enough that the engine's
// own cost dominates.
func benchValidate(_ context.Context, o *benchOrder) error {
	if o.Total <= 0 {
		return saga.Permanent(errNoStock)
	}
	return nil
}
func benchCharge(_ context.Context, o *benchOrder) error  { o.Charged = o.Total; return nil }
func benchReserve(_ context.Context, o *benchOrder) error { o.Reserved++; return nil }
func benchShip(_ context.Context, o *benchOrder) error    { o.Shipment++; return nil }

func benchDefinition(b *testing.B) *saga.Definition[benchOrder] {
	undo := func(context.Context, *benchOrder) error { return nil }
	def, err := saga.NewDefinition("bench", []saga.Step[benchOrder]{
		{Name: "validate", Action: benchValidate},
		{Name: "payment", Action: benchCharge, Compensate: undo},
		{Name: "inventory", Action: benchReserve, Compensate: undo},
		{Name: "shipping", Action: benchShip, Compensate: undo},
	})
	if err != nil {
		b.Fatal(err)
	}
	return def
}

// BenchmarkSaga runs the four-step saga through the engine on the memory
// store, and the same four functions called directly, so that the engine's
// overhead reads as a ratio of the two in one run.
func BenchmarkSaga(b *testing.B) {
	b.Run("engine/serial", func(b *testing.B) { benchEngine(b, false) })
	b.Run("engine/parallel", func(b *testing.B) { benchEngine(b, true) })
	b.Run("direct/serial", func(b *testing.B) {
		b.ReportAllocs()
		ctx := context.Background()
		for b.Loop() {
			benchDirect(ctx)
		}
	})
	b.Run("direct/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			for pb.Next() {
				benchDirect(ctx)
			}
		})
	})
}

func benchDirect(ctx context.Context) {
	o := benchOrder{Total: 100}
	for _, f := range []func(context.Context, *benchOrder) error{benchValidate, benchCharge, benchReserve, benchShip} {
		if err := f(ctx, &o); err != nil {
			panic(err)
		}
	}
}

func benchEngine(b *testing.B, parallel bool) {
	var ended, target atomic.Int64
	one := make(chan struct{}, 1)
	all := make(chan struct{})
	c, err := saga.New(benchDefinition(b), saga.Config{
		Store:           saga.NewMemoryStore(saga.MemoryConfig{MaxFinished: 10_000}),
		Logger:          slog.New(slog.DiscardHandler),
		WaitForCapacity: true,
		Hooks: saga.Hooks{OnEvent: func(e saga.Event) {
			if !e.Ends() {
				return
			}
			n := ended.Add(1)
			if !parallel {
				one <- struct{}{}
			} else if t := target.Load(); t > 0 && n == t {
				close(all)
			}
		}},
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Startup(ctx); err != nil {
		b.Fatal(err)
	}
	defer c.Shutdown(ctx)
	b.ReportAllocs()
	b.ResetTimer()

	var started atomic.Int64
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Start(ctx, benchOrder{Total: 100}); err != nil {
					b.Error(err)
					return
				}
				started.Add(1)
			}
		})
		// Wait for the last instances: the hook closes all when the count
		// reaches the target, unless it got there first.
		target.Store(started.Load())
		if ended.Load() < target.Load() {
			<-all
		}
		return
	}
	for b.Loop() {
		if _, err := c.Start(ctx, benchOrder{Total: 100}); err != nil {
			b.Fatal(err)
		}
		<-one
	}
}
