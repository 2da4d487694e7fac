package clock_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sagaflow/sagaflow/clock"
)

// Timers on a fake clock fire in deadline order when the test advances it;
// equal deadlines fire in the order they were armed, and Now reports each
// timer's deadline while it fires.
func ExampleFake() {
	f := clock.NewFake(time.Time{}) // 2025-01-01T00:00:00Z
	show := func(name string) func() {
		return func() { fmt.Println(name, "at", f.Now().Format(time.TimeOnly)) }
	}
	f.AfterFunc(2*time.Second, show("third"))
	f.AfterFunc(time.Second, show("first"))
	f.AfterFunc(time.Second, show("second"))
	f.AfterFunc(time.Hour, show("later"))

	f.Advance(3 * time.Second)
	fmt.Println("now", f.Now().Format(time.TimeOnly), "armed", f.Timers())
	// Output:
	// first at 00:00:01
	// second at 00:00:01
	// third at 00:00:02
	// now 00:00:03 armed 1
}

// BlockUntil lets a test wait until the code under test is waiting on the
// clock, then move time, without sleeping.
func ExampleFake_BlockUntil() {
	f := clock.NewFake(time.Time{})
	done := make(chan error, 1)
	go func() { done <- clock.Sleep(context.Background(), f, time.Minute) }()

	if err := f.BlockUntil(context.Background(), 1); err != nil {
		fmt.Println(err)
		return
	}
	f.Advance(time.Minute)
	fmt.Println("slept:", <-done, "now", f.Now().Format(time.TimeOnly))
	// Output:
	// slept: <nil> now 00:01:00
}

// AdvanceToNext jumps straight to the next timer.
func ExampleFake_AdvanceToNext() {
	f := clock.NewFake(time.Time{})
	tk := f.NewTicker(90 * time.Second)
	defer tk.Stop()

	for range 2 {
		moved, _ := f.AdvanceToNext()
		fmt.Println("moved", moved, "tick", (<-tk.C()).Format(time.TimeOnly))
	}
	// Output:
	// moved 1m30s tick 00:01:30
	// moved 1m30s tick 00:03:00
}

// A timeout on a fake clock expires when the fake reaches it, with the
// same error as a real one.
func ExampleWithTimeout() {
	f := clock.NewFake(time.Time{})
	ctx, cancel := clock.WithTimeout(context.Background(), f, 30*time.Second)
	defer cancel()

	deadline, _ := ctx.Deadline()
	fmt.Println("deadline", deadline.Format(time.TimeOnly))
	f.Advance(29 * time.Second)
	fmt.Println("after 29s:", ctx.Err())
	f.Advance(time.Second)
	fmt.Println("after 30s:", ctx.Err(), errors.Is(ctx.Err(), context.DeadlineExceeded))
	// Output:
	// deadline 00:00:30
	// after 29s: <nil>
	// after 30s: context deadline exceeded true
}
