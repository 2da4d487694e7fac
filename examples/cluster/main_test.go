package main

import (
	"bytes"
	"os"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// A statement whose context ends while it runs (as the killed node's
// writes do, cut off by its Close) makes pgx close its connection in a
// goroutine of its own, which sends PostgreSQL a cancel request and reads until the
// server hangs up, for at most 15 seconds: pgx's cleanup, not one of ours.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/jackc/pgx/v5/pgconn.(*PgConn).asyncClose.func1"))
}

func TestClusterFinishesTheKilledNodesOrders(t *testing.T) {
	dsn := os.Getenv("SAGAFLOW_TEST_POSTGRES_URL")
	if dsn == "" {
		if os.Getenv("SAGAFLOW_REQUIRE_POSTGRES") != "" {
			t.Fatal("SAGAFLOW_REQUIRE_POSTGRES is set but SAGAFLOW_TEST_POSTGRES_URL is empty")
		}
		t.Skip("needs SAGAFLOW_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test)")
	}
	var out bytes.Buffer
	require.NoError(t, run(&out, dsn, 12), out.String())
	got := out.String()
	t.Log(got)
	for _, want := range []string{
		`3 nodes on schema sagaflow_cluster_\d+, lease 2s, claim every 250ms\n`,
		`node-1 took 12 orders: kept [4-6], offered [6-8]\n`,
		`  running on node-1 [4-8], node-2 [1-5], node-3 [1-5]\n`,
		`node-2 killed with [1-5] orders unfinished\n`,
		`its orders were finished by node-1 \d, node-3 \d\n`,
		`all 12 orders completed, the last [\d.]+m?s after the kill\n`,
	} {
		assert.Regexp(t, regexp.MustCompile(want), got)
	}
}
