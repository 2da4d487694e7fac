// Loadgen drives orderflow with many concurrent orders and reports
// throughput, latency and memory, side by side with the same work done by
// plain goroutines with no engine at all (-engine bare). It verifies what
// it measures: every order's outcome, and the services' books.
//
//	go run ./examples/loadgen                       # 100,000 orders, 1,000 at a time, memory store
//	go run ./examples/loadgen -engine bare          # the floor: the same service calls, no engine
//	go run ./examples/loadgen -store journal -json  # every acknowledgement fsynced
//	go run ./examples/loadgen -store postgres -dsn postgres://postgres@127.0.0.1:5432/test -coordinators 3
//
// Orders are placed without waiting for their end, as a service's request
// handlers place them, and the engine's event hook hands each end back,
// which frees its place for the next order. With the memory store a
// goroutine per processor places them; with a durable store, whose
// acknowledgement waits for a write, one per order in flight does.
// -engine bare runs each order to its end in one of -concurrency
// goroutines, which yields after each order, as a request handler waits
// for the network between requests.
//
// With the memory store the engine gets four workers per processor
// (-workers): the services run in this process and never wait, and more
// workers would only queue for the processors. With the journal it gets a
// worker per order in flight: every step waits for an fsync, and the
// orders waiting should share one rather than queue for a worker. The
// journal is in a temporary directory, removed at the end, or the one
// given with -dir, which is kept; a -dir (or a -schema) that holds
// unfinished orders of an earlier run is refused, since this run's
// services would see them run.
//
// Before anything else, loops that neither allocate nor call anything
// keep every processor busy for -warmup (500ms), so that processors that
// slow down when idle, as those of the machine in the README do, start
// the run busy; nothing else is warmer for it. -warmup 0 runs cold.
//
// With -store postgres the orders run on saga/pgstore. An order's
// creation and every step it records wait for a round trip to the
// database (the store writes the steps of many orders in one statement),
// so there too each order in flight gets a worker. -coordinators N runs N
// coordinators in this process, standing in for N replicas of a service:
// each has its own connection pool (-pool, 16 connections by default), its
// own pgstore.Store (its own node) and its own orderflow System; they call
// one set of services, as replicas share their downstream services, since
// a coordinator may hand an order to another (see pgstore). The orders go
// to them in turn. They share a fresh schema, dropped at the end, or the one
// given with -schema, which is kept. Before the orders, the run measures
// the database's own single-row commit rate for -raw-time (2s): as many
// goroutines as orders in flight, at most one per connection, each
// committing one-row INSERTs into a scratch table. It reports that rate
// and the ratio of orders/s to it, so that the orders' throughput can be
// judged against what the database itself does.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

func main() {
	// An interrupt stops the orders; the run still cleans up (and drops
	// its PostgreSQL schema) and reports the orders it did not finish.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop) // a second interrupt ends the process, cleaning up or not
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
		}
		os.Exit(1)
	}
}

// options are the command line.
type options struct {
	orders       int
	concurrency  int
	workers      int
	store        string
	dir          string
	dsn          string
	schema       string
	coordinators int
	pool         int
	rawTime      time.Duration
	failRate     float64
	engine       string
	json         bool
	cpuProfile   string
	memProfile   string
	warmup       time.Duration
}

// schemaName is what pgstore accepts as a schema name.
var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.orders, "orders", 100_000, "orders to run")
	fs.IntVar(&o.concurrency, "concurrency", 1_000, "orders in flight at once")
	fs.IntVar(&o.workers, "workers", 0, "engine workers per coordinator (default: one per order in flight with the journal or PostgreSQL, four per processor with the memory store)")
	fs.StringVar(&o.store, "store", "memory", "store: memory, journal or postgres")
	fs.StringVar(&o.dir, "dir", "", "journal directory (default: a temporary one, removed afterwards)")
	fs.StringVar(&o.dsn, "dsn", "", "PostgreSQL URL, with -store postgres (e.g. postgres://postgres@127.0.0.1:5432/test)")
	fs.StringVar(&o.schema, "schema", "", "PostgreSQL schema, kept afterwards (default: a fresh one, dropped afterwards)")
	fs.IntVar(&o.coordinators, "coordinators", 1, "coordinators sharing the database, each with its own pool, store and services, with -store postgres")
	fs.IntVar(&o.pool, "pool", 16, "PostgreSQL connections per coordinator")
	fs.DurationVar(&o.rawTime, "raw-time", 2*time.Second, "how long to measure PostgreSQL's single-row commit rate before the orders")
	fs.Float64Var(&o.failRate, "fail-rate", 0.1, "fraction of orders that fail at shipping and compensate")
	fs.StringVar(&o.engine, "engine", "sagaflow", "engine: sagaflow, or bare for plain goroutines")
	fs.BoolVar(&o.json, "json", false, "print one JSON object instead of a table")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the orders' run to this file")
	fs.StringVar(&o.memProfile, "memprofile", "", "write an allocation profile to this file")
	fs.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "keep the processors busy for this long before the orders, so that processors that slow down when idle start the run busy (0: none)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	pg := o.store == "postgres" && o.engine == "sagaflow"
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case o.orders <= 0:
		return o, errors.New("-orders must be positive")
	case o.concurrency <= 0:
		return o, errors.New("-concurrency must be positive")
	case o.workers < 0:
		return o, errors.New("-workers must not be negative")
	case o.store != "memory" && o.store != "journal" && o.store != "postgres":
		return o, fmt.Errorf("-store must be memory, journal or postgres, not %q", o.store)
	case o.engine != "sagaflow" && o.engine != "bare":
		return o, fmt.Errorf("-engine must be sagaflow or bare, not %q", o.engine)
	case o.failRate < 0 || o.failRate > 1:
		return o, errors.New("-fail-rate must be between 0 and 1")
	case o.coordinators < 1:
		return o, fmt.Errorf("-coordinators must be at least 1, not %d", o.coordinators)
	case o.coordinators > 1 && !pg:
		return o, errors.New("-coordinators above 1 needs -store postgres (and the sagaflow engine): only PostgreSQL shares orders between coordinators")
	case pg && o.dsn == "":
		return o, errors.New("-store postgres needs -dsn, the database's URL (e.g. postgres://postgres@127.0.0.1:5432/test)")
	case !pg && (set["dsn"] || set["schema"] || set["pool"] || set["raw-time"]):
		return o, errors.New("-dsn, -schema, -pool and -raw-time go with -store postgres and the sagaflow engine")
	case set["dir"] && (o.store != "journal" || o.engine != "sagaflow"):
		return o, errors.New("-dir goes with -store journal and the sagaflow engine")
	case set["workers"] && o.engine != "sagaflow":
		return o, errors.New("-workers goes with the sagaflow engine")
	case o.schema != "" && !schemaName.MatchString(o.schema):
		return o, fmt.Errorf("-schema %q: want lower-case letters, digits and _, starting with a letter or _", o.schema)
	case o.pool < 1:
		return o, fmt.Errorf("-pool must be at least 1, not %d", o.pool)
	case o.rawTime <= 0:
		return o, errors.New("-raw-time must be positive")
	case o.warmup < 0:
		return o, errors.New("-warmup must not be negative")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	var cpuProfile io.Writer // nil: none
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		cpuProfile = f
	}
	if o.memProfile != "" {
		runtime.MemProfileRate = 64 << 10
	}

	res, problems, err := load(ctx, o, stderr, cpuProfile)
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
	each := ""
	if r.Coordinators > 1 {
		each = fmt.Sprintf(" each, on %d coordinators", r.Coordinators)
	}
	if r.Engine == "bare" {
		fmt.Fprintf(tw, "orders\t%d (concurrency %d)\n", r.Orders, r.Concurrency)
	} else {
		fmt.Fprintf(tw, "orders\t%d (concurrency %d, %d workers%s)\n", r.Orders, r.Concurrency, r.Workers, each)
	}
	fmt.Fprintf(tw, "outcome\t%d completed, %d failed, %d stuck, %d lost\n", r.Completed, r.Failed, r.Stuck, r.Lost)
	if r.Coordinators > 1 {
		ran := make([]string, len(r.PerCoordinator))
		for k, n := range r.PerCoordinator {
			ran[k] = strconv.Itoa(n)
		}
		fmt.Fprintf(tw, "per coordinator\t%s orders\n", strings.Join(ran, ", "))
	}
	fmt.Fprintf(tw, "throughput\t%.0f orders/s (%.2fs)\n", r.OrdersPerSec, r.ElapsedSec)
	fmt.Fprintf(tw, "latency\tp50 %.2f ms, p95 %.2f ms, p99 %.2f ms, max %.2f ms\n", r.P50Ms, r.P95Ms, r.P99Ms, r.MaxMs)
	fmt.Fprintf(tw, "peak heap\t%.1f MB\n", r.PeakHeapMB)
	if j := r.Journal; j != nil {
		fmt.Fprintf(tw, "journal\t%d records, %d fsyncs (%.1f records each), %.1f MB written\n",
			j.Records, j.Fsyncs, j.RecordsPerSync, j.MB)
	}
	if pg := r.Postgres; pg != nil {
		kept := "not dropped"
		if pg.SchemaDropped {
			kept = "dropped"
		}
		fmt.Fprintf(tw, "postgres\tschema %s (%s), %d connections per coordinator\n", pg.Schema, kept, pg.Pool)
		fmt.Fprintf(tw, "raw commits\t%.0f single-row commits/s (%d goroutines, %.2fs); orders/s ÷ commits/s = %.3f\n",
			pg.RawCommitsPerSec, pg.RawConcurrency, pg.RawSec, pg.OrdersPerRawCommit)
	}
	fmt.Fprintf(tw, "runtime\t%s, GOMAXPROCS %d\n", r.GoVersion, r.GOMAXPROCS)
	if r.WarmupSec > 0 {
		fmt.Fprintf(tw, "warm-up\t%.2fs of busy processors before the run\n", r.WarmupSec)
	}
	tw.Flush()
}
