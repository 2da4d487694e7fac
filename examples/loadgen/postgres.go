package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/saga/pgstore"
)

// postgresStats describe a run on PostgreSQL: where it ran, and the
// database's own single-row commit rate measured in the same run, the
// floor under every step an order records.
type postgresStats struct {
	Schema        string `json:"schema"`
	SchemaDropped bool   `json:"schema_dropped"`
	Pool          int    `json:"pool"` // connections per coordinator
	// RawConcurrency goroutines each commit one-row INSERTs for RawSec.
	RawConcurrency   int     `json:"raw_concurrency"`
	RawCommits       int64   `json:"raw_commits"`
	RawSec           float64 `json:"raw_sec"`
	RawCommitsPerSec float64 `json:"raw_commits_per_sec"`
	// OrdersPerRawCommit is orders/s ÷ raw commits/s.
	OrdersPerRawCommit float64 `json:"orders_per_raw_commit"`
}

// database is the PostgreSQL side of a run: the schema every coordinator
// shares, and a pool of its own to create and drop it.
type database struct {
	admin  *sql.DB
	run    string // random, names this run's nodes and orders
	schema string
	drop   bool // the schema is this run's own, dropped at close
}

// openDatabase connects to o.dsn and names the run's schema: o.schema, or
// a fresh one that close drops.
func openDatabase(ctx context.Context, o options) (*database, error) {
	admin, err := openPool(ctx, o.dsn, 2)
	if err != nil {
		return nil, err
	}
	d := &database{admin: admin, run: newRunID(), schema: o.schema}
	if d.schema == "" {
		d.schema, d.drop = "loadgen_"+d.run, true
	}
	return d, nil
}

// openPool opens a pool of at most size connections, all kept open
// between uses (database/sql keeps only two idle by default, and a busy
// coordinator would otherwise reconnect all the time).
func openPool(ctx context.Context, dsn string, size int) (*sql.DB, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(size)
	db.SetMaxIdleConns(size)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	return db, nil
}

// openStore opens coordinator k's pool and store on the run's schema, as
// one replica of a service would.
func (d *database) openStore(ctx context.Context, o options, k int) (*sql.DB, *pgstore.Store, error) {
	db, err := openPool(ctx, o.dsn, o.pool)
	if err != nil {
		return nil, nil, err
	}
	store, err := pgstore.Open(ctx, db, pgstore.Options{
		Schema: d.schema,
		Node:   fmt.Sprintf("loadgen-%s-%d", d.run, k+1),
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, store, nil
}

// rawCommits measures the database's single-row commit rate: workers
// goroutines, spread over the pools, each commit one-row INSERTs into a
// scratch table until dur has passed. The table is dropped afterwards.
func (d *database) rawCommits(ctx context.Context, clk clock.Clock, pools []*sql.DB, workers int, dur time.Duration) (*postgresStats, error) {
	table := `"` + d.schema + `".loadgen_raw_commits`
	if _, err := d.admin.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS "`+d.schema+`"`); err != nil {
		return nil, fmt.Errorf("raw commits: %w", err)
	}
	if _, err := d.admin.ExecContext(ctx, `DROP TABLE IF EXISTS `+table); err != nil {
		return nil, fmt.Errorf("raw commits: %w", err)
	}
	if _, err := d.admin.ExecContext(ctx, `CREATE TABLE `+table+` (id bigserial PRIMARY KEY, v text)`); err != nil {
		return nil, fmt.Errorf("raw commits: %w", err)
	}
	insert := `INSERT INTO ` + table + ` (v) VALUES ($1)`
	var (
		commits atomic.Int64
		mu      sync.Mutex
		errs    []error
		wg      sync.WaitGroup
	)
	start := clk.Now()
	end := start.Add(dur)
	for w := range workers {
		db := pools[w%len(pools)]
		wg.Go(func() {
			for clk.Now().Before(end) {
				if _, err := db.ExecContext(ctx, insert, "x"); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				commits.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := clk.Now().Sub(start)
	_, dropErr := d.admin.ExecContext(context.WithoutCancel(ctx), `DROP TABLE IF EXISTS `+table)
	if err := errors.Join(append(errs, dropErr)...); err != nil {
		return nil, fmt.Errorf("raw commits: %w", err)
	}
	n := commits.Load()
	return &postgresStats{
		Schema: d.schema, RawConcurrency: workers, RawCommits: n,
		RawSec: elapsed.Seconds(), RawCommitsPerSec: float64(n) / elapsed.Seconds(),
	}, nil
}

// close drops the schema if it is the run's own, and closes the pool.
// It reports whether it dropped the schema.
func (d *database) close() (dropped bool, err error) {
	if d.drop {
		_, err = d.admin.ExecContext(context.Background(), `DROP SCHEMA IF EXISTS "`+d.schema+`" CASCADE`)
		if err != nil {
			err = fmt.Errorf("drop schema %s: %w", d.schema, err)
		}
	}
	return d.drop && err == nil, errors.Join(err, d.admin.Close())
}
