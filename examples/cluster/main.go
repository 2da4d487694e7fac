// Command cluster runs three coordinators on one PostgreSQL database, as
// three replicas of a service would, places orders on all of them, kills
// one mid-flight and shows the others finishing its orders once its lease
// has expired.
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
	stepTime      = 50 * time.Millisecond
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

// ledger records which node finished each order.
type ledger struct {
	mu       sync.Mutex
	finished map[string]string // order → node
	done     chan struct{}     // nudged on every finish
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

	led := &ledger{finished: map[string]string{}, done: make(chan struct{}, 1)}
	var ns []*node
	defer func() {
		for _, n := range ns {
			n.stop()
		}
	}()
	for i := range nodes {
		n, err := startNode(ctx, fmt.Sprintf("node-%d", i+1), dsn, schema, led)
		if err != nil {
			return err
		}
		ns = append(ns, n)
	}
	fmt.Fprintf(w, "%d nodes on schema %s, lease %v, claim every %v\n", nodes, schema, leaseTTL, claimInterval)

	placed := map[string][]string{}
	for i := range orders {
		n := ns[i%nodes]
		id := fmt.Sprintf("order-%03d", i+1)
		if _, err := n.coord.Start(ctx, order{N: i}, saga.WithID(id)); err != nil {
			return err
		}
		placed[n.name] = append(placed[n.name], id)
	}
	for _, n := range ns {
		fmt.Fprintf(w, "  %s placed %d orders\n", n.name, len(placed[n.name]))
	}

	// Kill node-2 while its orders are in their second step.
	time.Sleep(stepTime + stepTime/2)
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
	for _, id := range placed[victim.name] {
		if _, ok := led.finished[id]; !ok {
			orphans = append(orphans, id)
		}
	}
	led.mu.Unlock()
	fmt.Fprintf(w, "%s killed with %d orders unfinished\n", victim.name, len(orphans))

	deadline := time.After(time.Minute)
	for {
		led.mu.Lock()
		n := len(led.finished)
		led.mu.Unlock()
		if n == orders {
			break
		}
		select {
		case <-led.done:
		case <-deadline:
			return fmt.Errorf("only %d of %d orders finished", n, orders)
		}
	}
	took := time.Since(killed)

	led.mu.Lock()
	defer led.mu.Unlock()
	by := map[string]int{}
	for _, id := range orphans {
		by[led.finished[id]]++
	}
	var parts []string
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
			if e.Type != saga.EventSagaCompleted {
				return
			}
			led.mu.Lock()
			led.finished[e.SagaID] = name
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
