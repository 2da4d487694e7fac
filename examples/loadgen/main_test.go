package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/orderflow"
	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/journal"
	"github.com/sagaflow/sagaflow/saga/pgstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSmallLoadBothEnginesAndStores(t *testing.T) {
	t.Parallel()
	workers := map[string]float64{ // four per processor, or one per order in flight with the journal
		"sagaflow-memory":  float64(4 * runtime.GOMAXPROCS(0)),
		"sagaflow-journal": 100,
		"bare":             0,
	}
	for name, args := range map[string][]string{
		"sagaflow-memory":  {"-engine", "sagaflow", "-store", "memory"},
		"sagaflow-journal": {"-engine", "sagaflow", "-store", "journal", "-dir", t.TempDir()},
		"bare":             {"-engine", "bare"},
	} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"-json", "-orders", "2000", "-concurrency", "100", "-fail-rate", "0.25", "-warmup", "20ms"}, args...)
			require.NoError(t, run(context.Background(), args, &stdout, &stderr), stderr.String())

			var got map[string]any
			dec := json.NewDecoder(&stdout)
			require.NoError(t, dec.Decode(&got))
			assert.False(t, dec.More(), "exactly one JSON object")
			for _, field := range []string{"engine", "store", "orders", "concurrency", "completed", "failed", "stuck",
				"lost", "orders_per_sec", "p50_ms", "p95_ms", "p99_ms", "max_ms", "peak_heap_mb", "go_version", "gomaxprocs",
				"warmup_sec"} {
				assert.Contains(t, got, field)
			}
			engine, _, _ := strings.Cut(name, "-")
			assert.Equal(t, engine, got["engine"])
			assert.GreaterOrEqual(t, got["warmup_sec"], 0.02)
			assert.EqualValues(t, 2000, got["orders"])
			assert.Equal(t, workers[name], got["workers"])
			assert.EqualValues(t, 1500, got["completed"])
			assert.EqualValues(t, 500, got["failed"])
			assert.EqualValues(t, 0, got["stuck"])
			assert.EqualValues(t, 0, got["lost"])
			assert.Equal(t, true, got["verified"])
			assert.Greater(t, got["orders_per_sec"], 0.0)
			assert.LessOrEqual(t, got["p50_ms"], got["p99_ms"])
			assert.Greater(t, got["peak_heap_mb"], 0.0)
			assert.Empty(t, stderr.String(), "no progress line when stderr is not a terminal")
		})
	}
}

func TestWarmUpEndsWithItsTimeOrContext(t *testing.T) {
	t.Parallel()
	clk := clock.Real()
	assert.Zero(t, warmUp(context.Background(), clk, 0), "-warmup 0 waits for nothing")

	start := time.Now()
	took := warmUp(context.Background(), clk, 20*time.Millisecond)
	assert.GreaterOrEqual(t, took, 20*time.Millisecond)
	assert.Less(t, took, 10*time.Second, "it ends with its time")
	assert.GreaterOrEqual(t, time.Since(start), took)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.Less(t, warmUp(ctx, clk, time.Hour), 10*time.Second, "an interrupt ends it before its time")
}

// TestWarmUpIsNotMeasured runs a warm-up that takes far longer than its
// orders: they are timed without it.
func TestWarmUpIsNotMeasured(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	args := []string{"-json", "-engine", "bare", "-orders", "100", "-concurrency", "10", "-warmup", "1s"}
	require.NoError(t, run(context.Background(), args, &stdout, &stderr), stderr.String())
	var got struct {
		Elapsed float64 `json:"elapsed_sec"`
		Warmup  float64 `json:"warmup_sec"`
	}
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &got))
	assert.GreaterOrEqual(t, got.Warmup, 1.0)
	assert.Less(t, got.Elapsed, 0.5)
}

func TestCPUProfileCoversTheRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "cpu.prof")
	var stdout, stderr bytes.Buffer
	args := []string{"-json", "-orders", "200", "-concurrency", "10", "-warmup", "0", "-cpuprofile", path}
	require.NoError(t, run(context.Background(), args, &stdout, &stderr), stderr.String())
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Positive(t, info.Size())

	// A profile that cannot be written stops the run before the warm-up.
	stdout.Reset()
	start := time.Now()
	args = []string{"-json", "-warmup", "1m", "-cpuprofile", filepath.Join(dir, "missing", "cpu.prof")}
	assert.Error(t, run(context.Background(), args, &stdout, &stderr))
	assert.Less(t, time.Since(start), 30*time.Second)
	assert.Empty(t, stdout.String())
}

func TestVerifyCatchesWrongOutcomesAndBooks(t *testing.T) {
	t.Parallel()
	o := options{orders: 100, concurrency: 10, failRate: 0.1}
	svc := newServices(o.orders, o.keepLast())
	tallied := func(skip int, wrong outcome) *tally {
		tl := new(tally)
		for i := range o.orders {
			req, fails := request(i, o.failRate)
			oc := completed
			if fails {
				oc = failed
			}
			if i == skip {
				oc = wrong
			}
			tl.record(i, req, fails, oc, time.Millisecond, 0)
		}
		return tl
	}

	problems := verify(o, svc, tallied(-1, 0))
	require.NotEmpty(t, problems, "the books show no charge for orders said to be completed")
	assert.Contains(t, problems[0], "credit in use")
	assert.NotContains(t, problems[len(problems)-1], "remember", "no order outlived the services' memory")

	tl := tallied(3, pending)
	problems = verify(o, svc, tl)
	assert.Equal(t, "order 3 ended lost, want completed", problems[0])

	// Books that do not balance after an order ran while more orders
	// were handed out than the services remember get the likely reason.
	tl.record(o.orders, orderflow.OrderRequest{}, true, failed, time.Millisecond, o.keepLast())
	problems = verify(options{orders: o.orders + 1, concurrency: o.concurrency}, svc, tl)
	assert.Equal(t, "65536 orders were handed out while one ran, and the services remember the last 65536 keys: undos that came later found nothing to undo",
		problems[len(problems)-1])

	// Orders that never ran, as in a run interrupted, are reported.
	problems = verify(options{orders: o.orders + 5, concurrency: o.concurrency}, svc, tallied(-1, 0))
	assert.Contains(t, problems, "5 orders never ran")
}

func TestVerifyPassesBooksThatBalance(t *testing.T) {
	t.Parallel()
	o := options{orders: 20, concurrency: 4, failRate: 0.25}
	svc := newServices(o.orders, o.keepLast())
	r := &bare{svc: svc, clk: clock.Real()}
	tl := new(tally)
	for i := range o.orders {
		req, fails := request(i, o.failRate)
		oc := r.order(context.Background(), i, req)
		tl.record(i, req, fails, oc, time.Millisecond, 0)
	}
	assert.Empty(t, verify(o, svc, tl))
	assert.EqualValues(t, 15, tl.completed.Load())
	assert.EqualValues(t, 5, tl.failed.Load())
}

// asyncRunner ends the orders it places from a goroutine of its own, as
// the engine's event hook does (or before start returns, as bare does, if
// inline), but refuses those that refuse says to, and ends none once hold
// says so.
type asyncRunner struct {
	finish finishFunc
	inline bool
	refuse func(i int) bool
	placed atomic.Int64
	hold   func(placed int64) bool
	wg     sync.WaitGroup
}

func (r *asyncRunner) start(_ context.Context, slot, i int, req orderflow.OrderRequest) bool {
	if r.refuse(i) {
		return false
	}
	if r.hold(r.placed.Add(1)) {
		return true
	}
	oc := completed
	if req.Customer.Address == unreachable {
		oc = failed
	}
	if r.inline {
		r.finish(slot, i, oc, time.Now())
	} else {
		r.wg.Go(func() { r.finish(slot, i, oc, time.Now()) })
	}
	return true
}

func (r *asyncRunner) close() error { r.wg.Wait(); return nil }

func TestDealerTakesBackEveryOrder(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		placers int // 0: a goroutine per slot
		inline  bool
	}{{3, false}, {3, true}, {0, true}} {
		t.Run(fmt.Sprintf("%d placers, inline %v", c.placers, c.inline), func(t *testing.T) {
			placers := c.placers
			o := options{orders: 500, concurrency: 8, failRate: 0.1}
			tl := new(tally)
			d := newDealer(o, clock.Real(), tl, placers)
			r := &asyncRunner{finish: d.finish, inline: c.inline, refuse: func(i int) bool { return i%50 == 7 },
				hold: func(int64) bool { return false }}
			d.run(context.Background(), r)
			require.NoError(t, r.close())

			assert.EqualValues(t, o.orders, d.done.Load(), "every order ended or was refused")
			assert.EqualValues(t, 10, tl.nWrong, "the refused orders count as lost")
			assert.EqualValues(t, o.orders-10, tl.completed.Load()+tl.failed.Load())
			assert.EqualValues(t, 50, tl.failed.Load())
			if placers > 0 {
				assert.Len(t, d.free, o.concurrency, "every slot is free again")
			}
			assert.EqualValues(t, o.orders-10, r.placed.Load())
		})
	}
}

// idle places every order and ends none.
type idle struct{}

func (idle) start(context.Context, int, int, orderflow.OrderRequest) bool { return true }
func (idle) close() error                                                 { return nil }

func TestDealerIgnoresEndsItDoesNotHold(t *testing.T) {
	t.Parallel()
	o := options{orders: 1, concurrency: 2}
	tl := new(tally)
	d := newDealer(o, clock.Real(), tl, 1)
	at := time.Now()

	assert.False(t, d.finish(0, 0, completed, at), "before anything was placed")
	assert.False(t, d.finish(-1, 0, completed, at))
	assert.False(t, d.finish(2, 0, completed, at))
	assert.Zero(t, d.done.Load())

	slot := <-d.free
	require.True(t, d.placeIn(context.Background(), idle{}, slot))
	assert.False(t, d.finish(slot, 7, completed, at), "an order the slot does not hold, as of an earlier run")
	assert.False(t, d.finish(1-slot, 0, completed, at))
	assert.Zero(t, d.done.Load())
	assert.Len(t, d.free, 1)

	assert.True(t, d.finish(slot, 0, completed, at))
	assert.False(t, d.finish(slot, 0, failed, at), "a second end")
	assert.EqualValues(t, 1, d.done.Load())
	assert.EqualValues(t, 1, tl.completed.Load())
	assert.Zero(t, tl.failed.Load())
	assert.Len(t, d.free, 2, "the slot is freed once")
	select {
	case <-d.ended:
		t.Fatal("ended before every order was handed out")
	default:
	}
}

func TestDealerStopsWhenInterrupted(t *testing.T) {
	t.Parallel()
	o := options{orders: 1000, concurrency: 8}
	tl := new(tally)
	d := newDealer(o, clock.Real(), tl, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The first 20 orders end; then every slot fills with an order that
	// never ends, and the run is interrupted.
	r := &asyncRunner{finish: d.finish, refuse: func(int) bool { return false }, hold: func(placed int64) bool {
		if placed > 20 {
			if placed == 20+int64(o.concurrency) {
				cancel()
			}
			return true
		}
		return false
	}}
	d.run(ctx, r) // returns although 8 orders never end
	require.NoError(t, r.close())
	assert.EqualValues(t, 20, d.done.Load())
	assert.EqualValues(t, 28, r.placed.Load(), "nothing is placed once every slot is held")
	assert.Contains(t, verify(o, newServices(o.orders, o.keepLast()), tl), "980 orders never ran")
}

func TestInterruptedRunReportsWhatDidNotRun(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, args := range [][]string{{"-engine", "bare"}, {"-store", "memory"}, {"-store", "journal", "-dir", t.TempDir()}} {
		var stdout, stderr bytes.Buffer
		err := run(ctx, append([]string{"-json", "-orders", "100", "-concurrency", "10"}, args...), &stdout, &stderr)
		require.ErrorContains(t, err, "100 orders never ran", "%v", args)
		var got struct {
			Lost     int  `json:"lost"`
			Verified bool `json:"verified"`
		}
		require.NoError(t, json.Unmarshal(stdout.Bytes(), &got), "%v: the result is still printed", args)
		assert.Equal(t, 100, got.Lost, "%v", args)
		assert.False(t, got.Verified, "%v", args)
	}
}

// TestJournalWithUnfinishedOrdersIsRefused leaves an unfinished order in a
// journal directory: a run there would resume it against its own
// services, so it refuses, and one that finds only finished orders goes on.
func TestJournalWithUnfinishedOrdersIsRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	args := []string{"-json", "-store", "journal", "-dir", dir, "-orders", "100", "-concurrency", "10", "-warmup", "0"}
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(context.Background(), args, &stdout, &stderr), stderr.String())
	stdout.Reset()
	require.NoError(t, run(context.Background(), args, &stdout, &stderr), "only finished orders: %s", stderr.String())

	j, err := journal.Open(dir, journal.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, j.Create(context.Background(), []saga.Event{{
		SagaID: "left", Run: "r", Seq: 1, Type: saga.EventSagaStarted, Definition: orderflow.SagaName, State: []byte(`{}`),
	}}))
	require.NoError(t, j.Close())
	stdout.Reset()
	err = run(context.Background(), args, &stdout, &stderr)
	assert.ErrorContains(t, err, dir+" holds 1 unfinished orders of an earlier run")
	assert.Empty(t, stdout.String())
}

func TestServicesRememberKeysOfManyOrdersInFlight(t *testing.T) {
	t.Parallel()
	assert.Equal(t, 1<<16, options{concurrency: 100}.keepLast(), "never fewer than 65,536")
	assert.Equal(t, 64_000_000, options{concurrency: 1_000_000}.keepLast())
}

func TestBadFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-orders", "0"}, {"-concurrency", "-1"}, {"-store", "disk"}, {"-engine", "temporal"},
		{"-fail-rate", "1.5"}, {"-warmup", "-1s"}, {"extra"}, {"-nope"},
	} {
		var stdout, stderr bytes.Buffer
		assert.Error(t, run(context.Background(), args, &stdout, &stderr), "%v", args)
		assert.Empty(t, stdout.String(), "%v", args)
	}
	pg := []string{"-store", "postgres", "-dsn", "postgres://nobody@127.0.0.1:1/none"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-store", "postgres"}, "-store postgres needs -dsn"},
		{[]string{"-coordinators", "3"}, "-coordinators above 1 needs -store postgres"},
		{[]string{"-coordinators", "2", "-store", "journal"}, "-coordinators above 1 needs -store postgres"},
		{append([]string{"-coordinators", "2", "-engine", "bare"}, pg...), "-coordinators above 1 needs -store postgres"},
		{append([]string{"-coordinators", "0"}, pg...), "-coordinators must be at least 1, not 0"},
		{append([]string{"-coordinators", "-2"}, pg...), "-coordinators must be at least 1, not -2"},
		{[]string{"-coordinators", "many"}, "invalid value"},
		{[]string{"-dsn", "postgres://x"}, "-dsn, -schema, -pool and -raw-time go with -store postgres"},
		{[]string{"-store", "journal", "-schema", "s"}, "-dsn, -schema, -pool and -raw-time go with -store postgres"},
		{append([]string{"-schema", "Bad-Name"}, pg...), `-schema "Bad-Name"`},
		{append([]string{"-pool", "0"}, pg...), "-pool must be at least 1"},
		{append([]string{"-raw-time", "0s"}, pg...), "-raw-time must be positive"},
		{[]string{"-dir", "d"}, "-dir goes with -store journal"},
		{[]string{"-dir", "d", "-store", "journal", "-engine", "bare"}, "-dir goes with -store journal and the sagaflow engine"},
		{[]string{"-engine", "bare", "-workers", "2"}, "-workers goes with the sagaflow engine"},
	} {
		var stdout, stderr bytes.Buffer
		assert.ErrorContains(t, run(context.Background(), tc.args, &stdout, &stderr), tc.want, "%v", tc.args)
		assert.Empty(t, stdout.String(), "%v", tc.args)
	}
}

func TestUnreachableDatabase(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-store", "postgres", "-dsn", "postgres://nobody@127.0.0.1:1/none"}, &stdout, &stderr)
	assert.ErrorContains(t, err, "connect to PostgreSQL")
	assert.Empty(t, stdout.String())
}

// The PostgreSQL runs use the database at SAGAFLOW_TEST_POSTGRES_URL.
// Without it they skip, unless SAGAFLOW_REQUIRE_POSTGRES is set (as CI
// does), which makes that a failure.
const (
	urlVar     = "SAGAFLOW_TEST_POSTGRES_URL"
	requireVar = "SAGAFLOW_REQUIRE_POSTGRES"
)

// testDatabase returns the test database's URL and a pool to it, closed at the
// end of the test.
func testDatabase(t *testing.T) (string, *sql.DB) {
	t.Helper()
	url := os.Getenv(urlVar)
	if url == "" {
		if os.Getenv(requireVar) != "" {
			t.Fatalf("%s is set but %s is empty: no PostgreSQL to test against", requireVar, urlVar)
		}
		t.Skipf("PostgreSQL runs need %s (e.g. postgres://postgres@127.0.0.1:5432/test)", urlVar)
	}
	db, err := sql.Open("pgx", url)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	require.NoError(t, db.PingContext(t.Context()), "connect to %s", url)
	return url, db
}

// schemaExists reports whether the database has the schema.
func schemaExists(t *testing.T, db *sql.DB, schema string) bool {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRowContext(t.Context(), `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, schema).Scan(&n))
	return n > 0
}

func TestSmallLoadOnPostgres(t *testing.T) {
	t.Parallel()
	url, db := testDatabase(t)
	for _, coordinators := range []int{1, 3} {
		t.Run(fmt.Sprintf("coordinators=%d", coordinators), func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			args := []string{"-json", "-store", "postgres", "-dsn", url, "-orders", "500", "-concurrency", "50", "-warmup", "0",
				"-coordinators", strconv.Itoa(coordinators), "-pool", "4", "-raw-time", "200ms"}
			require.NoError(t, run(context.Background(), args, &stdout, &stderr), stderr.String())

			var got struct {
				Store          string  `json:"store"`
				Orders         int     `json:"orders"`
				Workers        int     `json:"workers"`
				Completed      int     `json:"completed"`
				Failed         int     `json:"failed"`
				Stuck          int     `json:"stuck"`
				Lost           int     `json:"lost"`
				Verified       bool    `json:"verified"`
				OrdersPerSec   float64 `json:"orders_per_sec"`
				P50Ms          float64 `json:"p50_ms"`
				P99Ms          float64 `json:"p99_ms"`
				Coordinators   int     `json:"coordinators"`
				PerCoordinator []int   `json:"per_coordinator"`
				Postgres       *struct {
					Schema             string  `json:"schema"`
					SchemaDropped      bool    `json:"schema_dropped"`
					Pool               int     `json:"pool"`
					RawConcurrency     int     `json:"raw_concurrency"`
					RawCommits         int     `json:"raw_commits"`
					RawCommitsPerSec   float64 `json:"raw_commits_per_sec"`
					OrdersPerRawCommit float64 `json:"orders_per_raw_commit"`
				} `json:"postgres"`
			}
			dec := json.NewDecoder(&stdout)
			require.NoError(t, dec.Decode(&got))
			assert.False(t, dec.More(), "exactly one JSON object")
			assert.Equal(t, "postgres", got.Store)
			assert.Equal(t, 500, got.Orders)
			assert.Equal(t, 50, got.Workers, "a worker per order in flight")
			assert.Equal(t, 450, got.Completed)
			assert.Equal(t, 50, got.Failed)
			assert.Zero(t, got.Stuck)
			assert.Zero(t, got.Lost)
			assert.True(t, got.Verified)
			assert.Greater(t, got.OrdersPerSec, 0.0)
			assert.LessOrEqual(t, got.P50Ms, got.P99Ms)

			assert.Equal(t, coordinators, got.Coordinators)
			require.Len(t, got.PerCoordinator, coordinators)
			sum := 0
			for k, n := range got.PerCoordinator {
				assert.Positive(t, n, "coordinator %d ran no order", k+1)
				sum += n
			}
			assert.Equal(t, 500, sum)

			pg := got.Postgres
			require.NotNil(t, pg)
			assert.Regexp(t, `^loadgen_[0-9a-f]{8}$`, pg.Schema)
			assert.True(t, pg.SchemaDropped)
			assert.False(t, schemaExists(t, db, pg.Schema), "schema %s left behind", pg.Schema)
			assert.Equal(t, 4, pg.Pool)
			assert.Equal(t, min(50, 4*coordinators), pg.RawConcurrency)
			assert.Positive(t, pg.RawCommits)
			assert.Greater(t, pg.RawCommitsPerSec, 0.0)
			assert.InDelta(t, got.OrdersPerSec/pg.RawCommitsPerSec, pg.OrdersPerRawCommit, 1e-9)
		})
	}
}

func TestPostgresKeepsAGivenSchema(t *testing.T) {
	t.Parallel()
	url, db := testDatabase(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	schema := "loadgen_test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		_, err := db.ExecContext(context.Background(), `DROP SCHEMA IF EXISTS "`+schema+`" CASCADE`)
		assert.NoError(t, err)
	})
	args := []string{"-json", "-store", "postgres", "-dsn", url, "-schema", schema,
		"-orders", "100", "-concurrency", "10", "-pool", "2", "-raw-time", "100ms", "-warmup", "0"}
	for range 2 { // the second run finds the first's orders, all finished
		var stdout, stderr bytes.Buffer
		require.NoError(t, run(context.Background(), args, &stdout, &stderr), stderr.String())
		var got struct {
			Completed int `json:"completed"`
			Postgres  struct {
				Schema        string `json:"schema"`
				SchemaDropped bool   `json:"schema_dropped"`
			} `json:"postgres"`
		}
		require.NoError(t, json.Unmarshal(stdout.Bytes(), &got))
		assert.Equal(t, 90, got.Completed)
		assert.Equal(t, schema, got.Postgres.Schema)
		assert.False(t, got.Postgres.SchemaDropped)
		assert.True(t, schemaExists(t, db, schema))
	}

	// An unfinished order in the schema would run against this run's
	// services and unbalance their books: the run refuses to start.
	store, err := pgstore.Open(t.Context(), db, pgstore.Options{Schema: schema, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, store.Create(t.Context(), []saga.Event{{
		SagaID: "left-over", Run: "r", Seq: 1, Type: saga.EventSagaStarted, Definition: orderflow.SagaName, State: []byte(`{}`),
	}}))
	require.NoError(t, store.Close())
	var stdout, stderr bytes.Buffer
	err = run(context.Background(), args, &stdout, &stderr)
	assert.ErrorContains(t, err, "schema "+schema+" holds 1 unfinished orders of an earlier run")
	assert.Empty(t, stdout.String())
}
