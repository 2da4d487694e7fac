package pgstore_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/saga/pgstore"
)

// The tests run against the database at SAGAFLOW_TEST_POSTGRES_URL, each in
// a schema of its own. Without it they skip, unless
// SAGAFLOW_REQUIRE_POSTGRES is set (as CI does), which makes that a failure.
const (
	urlVar     = "SAGAFLOW_TEST_POSTGRES_URL"
	requireVar = "SAGAFLOW_REQUIRE_POSTGRES"
)

// leaseTTL is the lease of every test store; the fake clock moves past it.
const leaseTTL = 10 * time.Second

// database returns a connection pool to the test database, closed at the
// end of the test.
func database(t testing.TB) *sql.DB {
	t.Helper()
	url := os.Getenv(urlVar)
	if url == "" {
		if os.Getenv(requireVar) != "" {
			t.Fatalf("%s is set but %s is empty: no PostgreSQL to test against", requireVar, urlVar)
		}
		t.Skipf("PostgreSQL tests need %s (e.g. postgres://postgres@127.0.0.1:5432/test)", urlVar)
	}
	db, err := sql.Open("pgx", url)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(32)
	require.NoError(t, db.PingContext(t.Context()), "connect to %s", url)
	return db
}

// newSchema returns a fresh schema name for t, dropped at the end of the
// test.
func newSchema(t testing.TB, db *sql.DB) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := strings.ToLower(t.Name())
	name = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, name)
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	schema := "t_" + name + "_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		_, err := db.ExecContext(context.Background(), `DROP SCHEMA IF EXISTS "`+schema+`" CASCADE`)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return schema
}

// cluster is a test database schema shared by several stores, as by
// several processes, all on one fake clock.
type cluster struct {
	t      testing.TB
	db     *sql.DB
	schema string
	clock  *clock.Fake
}

func newCluster(t testing.TB) *cluster {
	db := database(t)
	return &cluster{t: t, db: db, schema: newSchema(t, db), clock: newFakeClock()}
}

func newFakeClock() *clock.Fake {
	return clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
}

// open opens a store on the cluster's schema, closed at the end of the
// test.
func (c *cluster) open(node string) *pgstore.Store {
	c.t.Helper()
	s, err := pgstore.Open(c.t.Context(), c.db, pgstore.Options{
		Schema: c.schema, Node: node, LeaseTTL: leaseTTL, Clock: c.clock,
	})
	require.NoError(c.t, err)
	c.t.Cleanup(func() { s.Close() })
	return s
}
