// Loadgen drives orderflow with many concurrent orders and reports
// throughput, latency and memory, side by side with the same work done by
// plain goroutines with no engine at all (-engine bare). It verifies what
// it measures: every order's outcome, and the services' books.
//
//	go run ./examples/loadgen                       # 100,000 orders, 1,000 at a time, memory store
//	go run ./examples/loadgen -engine bare          # the floor: the same service calls, no engine
//	go run ./examples/loadgen -store journal -json  # every acknowledgement fsynced
//
// With the journal the engine gets a worker per order in flight
// (-workers): every step waits for an fsync, and the orders waiting should
// share one rather than queue for a worker.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"text/tabwriter"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
		}
		os.Exit(1)
	}
}

// options are the command line.
type options struct {
	orders      int
	concurrency int
	workers     int
	store       string
	dir         string
	failRate    float64
	engine      string
	json        bool
	cpuProfile  string
	memProfile  string
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.orders, "orders", 100_000, "orders to run")
	fs.IntVar(&o.concurrency, "concurrency", 1_000, "orders in flight at once")
	fs.IntVar(&o.workers, "workers", 0, "engine workers (default: one per order in flight with the journal, the engine's default otherwise)")
	fs.StringVar(&o.store, "store", "memory", "store: memory or journal")
	fs.StringVar(&o.dir, "dir", "", "journal directory (default: a temporary one, removed afterwards)")
	fs.Float64Var(&o.failRate, "fail-rate", 0.1, "fraction of orders that fail at shipping and compensate")
	fs.StringVar(&o.engine, "engine", "sagaflow", "engine: sagaflow, or bare for plain goroutines")
	fs.BoolVar(&o.json, "json", false, "print one JSON object instead of a table")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile to this file")
	fs.StringVar(&o.memProfile, "memprofile", "", "write an allocation profile to this file")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case o.orders <= 0:
		return o, errors.New("-orders must be positive")
	case o.concurrency <= 0:
		return o, errors.New("-concurrency must be positive")
	case o.workers < 0:
		return o, errors.New("-workers must not be negative")
	case o.store != "memory" && o.store != "journal":
		return o, fmt.Errorf("-store must be memory or journal, not %q", o.store)
	case o.engine != "sagaflow" && o.engine != "bare":
		return o, fmt.Errorf("-engine must be sagaflow or bare, not %q", o.engine)
	case o.failRate < 0 || o.failRate > 1:
		return o, errors.New("-fail-rate must be between 0 and 1")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if o.memProfile != "" {
		runtime.MemProfileRate = 64 << 10
	}

	res, problems, err := load(ctx, o, stderr)
	if err != nil {
		return err
	}
	if o.memProfile != "" {
		f, err := os.Create(o.memProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return err
		}
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		printTable(stdout, res)
	}
	if len(problems) > 0 {
		return fmt.Errorf("verification failed:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}

// printTable writes the result for a reader.
func printTable(w io.Writer, r result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "engine\t%s\n", r.Engine)
	fmt.Fprintf(tw, "store\t%s\n", r.Store)
	switch {
	case r.Workers > 0:
		fmt.Fprintf(tw, "orders\t%d (concurrency %d, %d workers)\n", r.Orders, r.Concurrency, r.Workers)
	case r.Engine == "bare":
		fmt.Fprintf(tw, "orders\t%d (concurrency %d)\n", r.Orders, r.Concurrency)
	default:
		fmt.Fprintf(tw, "orders\t%d (concurrency %d, the engine's default workers)\n", r.Orders, r.Concurrency)
	}
	fmt.Fprintf(tw, "outcome\t%d completed, %d failed, %d stuck, %d lost\n", r.Completed, r.Failed, r.Stuck, r.Lost)
	fmt.Fprintf(tw, "throughput\t%.0f orders/s (%.2fs)\n", r.OrdersPerSec, r.ElapsedSec)
	fmt.Fprintf(tw, "latency\tp50 %.2f ms, p95 %.2f ms, p99 %.2f ms, max %.2f ms\n", r.P50Ms, r.P95Ms, r.P99Ms, r.MaxMs)
	fmt.Fprintf(tw, "peak heap\t%.1f MB\n", r.PeakHeapMB)
	if j := r.Journal; j != nil {
		fmt.Fprintf(tw, "journal\t%d records, %d fsyncs (%.1f records each), %.1f MB written\n",
			j.Records, j.Fsyncs, j.RecordsPerSync, j.MB)
	}
	fmt.Fprintf(tw, "runtime\t%s, GOMAXPROCS %d\n", r.GoVersion, r.GOMAXPROCS)
	tw.Flush()
}
