// Command cluster runs three coordinators on one PostgreSQL database, as
// three replicas of a service would, places every order on the first, shows
// the orders spreading across all three, kills one mid-flight and shows the
// others finishing its orders once its lease has expired.
//
//	go run ./examples/cluster -dsn postgres://postgres@127.0.0.1:5432/test
//
// Each node has its own connection pool, store and coordinator, as a
// process would; killing a node closes its pool without a graceful
// shutdown, so it neither renews its lease nor hands its orders back. The
// tables live in a fresh schema that is dropped at the end.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/pgstore"
)

func main() {
	dsn := flag.String("dsn", envOr("SAGAFLOW_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"), "PostgreSQL URL")
	orders := flag.Int("orders", 30, "orders to place")
	flag.Parse()
	if err := run(os.Stdout, *dsn, *orders); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

const (
	nodes         = 3
	leaseTTL      = 2 * time.Second
	claimInterval = 250 * time.Millisecond
	stepTime      = 200 * time.Millisecond
)

type order struct {
	N int `json:"n"`
}

// node stands for one process of the service.
type node struct {
	name  string
	db    *sql.DB
	store *pgstore.Store
	coord *saga.Coordinator[order]
}

// ledger records which node ran the first step of each order, and which
// finished it.
type ledger struct {
	mu       sync.Mutex
	ran      map[string]string // order → node
	finished map[string]string // order → node
	done     chan struct{}     // nudged on every change
}

// wait waits until cond holds, with the ledger locked, for up to a minute.
func (l *ledger) wait(what string, cond func() bool) error {
	deadline := time.After(time.Minute)
	for {
		l.mu.Lock()
		ok := cond()
		l.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-l.done:
		case <-deadline:
			return fmt.Errorf("timed out waiting until %s", what)
		}
	}
}

func run(w io.Writer, dsn string, orders int) error {
	ctx := context.Background()
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer admin.Close()
	if err := admin.PingContext(ctx); err != nil {
		return fmt.Errorf("connect to %s: %w", dsn, err)
	}
	schema := fmt.Sprintf("sagaflow_cluster_%d", os.Getpid())
	defer admin.ExecContext(ctx, `DROP SCHEMA IF EXISTS "`+schema+`" CASCADE`)

	led := &ledger{ran: map[string]string{}, finished: map[string]string{}, done: make(chan struct{}, 1)}
	var ns []*node
	defer func() {
		for _, n := range ns {
			n.stop()
		}
	}()
	// The last node to start counts all three at once.
	for i := nodes; i > 0; i-- {
		n, err := startNode(ctx, fmt.Sprintf("node-%d", i), dsn, schema, led)
		if err != nil {
			return err
		}
		ns = append([]*node{n}, ns...)
	}
	fmt.Fprintf(w, "%d nodes on schema %s, lease %v, claim every %v\n", nodes, schema, leaseTTL, claimInterval)

	// Every order arrives at node-1, which keeps its share and offers the
	// rest; the others claim them at their next claim interval.
	for i := range orders {
		id := fmt.Sprintf("order-%03d", i+1)
		if _, err := ns[0].coord.Start(ctx, order{N: i}, saga.WithID(id)); err != nil {
			return err
		}
	}
	offered := ns[0].coord.Health(ctx).Offered
	fmt.Fprintf(w, "node-1 took %d orders: kept %d, offered %d\n", orders, orders-offered, offered)
	if err := led.wait("every order is running", func() bool { return len(led.ran) == orders }); err != nil {
		return err
	}
	running := map[string]int{}
	led.mu.Lock()
	for _, n := range led.ran {
		running[n]++
	}
	led.mu.Unlock()
	var parts []string
	for _, n := range ns {
		parts = append(parts, fmt.Sprintf("%s %d", n.name, running[n.name]))
	}
	fmt.Fprintf(w, "  running on %s\n", strings.Join(parts, ", "))

	// Kill node-2 while its orders are in their second step or so.
	victim := ns[1]
	ns = slices.Delete(ns, 1, 2)
	victim.db.Close()
	killed := time.Now()
	dead, cancel := context.WithCancel(ctx)
	cancel()
	_ = victim.coord.Shutdown(dead) // it cannot reach the database any more
	_ = victim.store.Close()
	var orphans []string
	led.mu.Lock()
	for id, n := range led.ran {
		if _, ok := led.finished[id]; n == victim.name && !ok {
			orphans = append(orphans, id)
		}
	}
	led.mu.Unlock()
	fmt.Fprintf(w, "%s killed with %d orders unfinished\n", victim.name, len(orphans))

	if err := led.wait("every order has finished", func() bool { return len(led.finished) == orders }); err != nil {
		return err
	}
	took := time.Since(killed)

	led.mu.Lock()
	defer led.mu.Unlock()
	by := map[string]int{}
	for _, id := range orphans {
		by[led.finished[id]]++
	}
	parts = parts[:0]
	for _, n := range ns {
		parts = append(parts, fmt.Sprintf("%s %d", n.name, by[n.name]))
	}
	fmt.Fprintf(w, "its orders were finished by %s\n", strings.Join(parts, ", "))
	fmt.Fprintf(w, "all %d orders completed, the last %v after the kill\n", orders, took.Round(100*time.Millisecond))
	if by[victim.name] > 0 {
		return errors.New("the killed node finished orders after its death")
	}
	return nil
}

// startNode opens a pool, a store and a coordinator, as one process would.
func startNode(ctx context.Context, name, dsn, schema string, led *ledger) (*node, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	store, err := pgstore.Open(ctx, db, pgstore.Options{
		Schema: schema, Node: name, LeaseTTL: leaseTTL,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	step := func(name string) saga.Step[order] {
		return saga.Step[order]{Name: name, Action: func(ctx context.Context, _ *order) error {
			select {
			case <-time.After(stepTime):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}}
	}
	def, err := saga.NewDefinition("order", []saga.Step[order]{
		step("validate"), step("charge"), step("reserve"), step("ship"),
	})
	if err != nil {
		return nil, err
	}
	coord, err := saga.New(def, saga.Config{
		Store: store, ClaimInterval: claimInterval, Logger: slog.New(slog.DiscardHandler),
		Hooks: saga.Hooks{OnEvent: func(e saga.Event) {
			led.mu.Lock()
			switch {
			case e.Type == saga.EventStepSucceeded && e.Step == "validate":
				led.ran[e.SagaID] = name
			case e.Type == saga.EventSagaCompleted:
				led.finished[e.SagaID] = name
			default:
				led.mu.Unlock()
				return
			}
			led.mu.Unlock()
			select {
			case led.done <- struct{}{}:
			default:
			}
		}},
	})
	if err != nil {
		return nil, err
	}
	if err := coord.Startup(ctx); err != nil {
		return nil, err
	}
	return &node{name: name, db: db, store: store, coord: coord}, nil
}

// stop shuts a live node down gracefully.
func (n *node) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = n.coord.Shutdown(ctx)
	_ = n.store.Close()
	_ = n.db.Close()
}
