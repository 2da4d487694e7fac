package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSmallLoadBothEnginesAndStores(t *testing.T) {
	t.Parallel()
	workers := map[string]float64{ // in flight, with the journal only
		"sagaflow-memory":  0,
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
			args := append([]string{"-json", "-orders", "2000", "-concurrency", "100", "-fail-rate", "0.25"}, args...)
			require.NoError(t, run(context.Background(), args, &stdout, &stderr), stderr.String())

			var got map[string]any
			dec := json.NewDecoder(&stdout)
			require.NoError(t, dec.Decode(&got))
			assert.False(t, dec.More(), "exactly one JSON object")
			for _, field := range []string{"engine", "store", "orders", "concurrency", "completed", "failed", "stuck",
				"lost", "orders_per_sec", "p50_ms", "p95_ms", "p99_ms", "max_ms", "peak_heap_mb", "go_version", "gomaxprocs"} {
				assert.Contains(t, got, field)
			}
			assert.Equal(t, args[8], got["engine"])
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

func TestVerifyCatchesWrongOutcomesAndBooks(t *testing.T) {
	t.Parallel()
	o := options{orders: 100, failRate: 0.1}
	svc := newServices(o.orders)
	outcomes := make([]outcome, o.orders)
	for i := range outcomes {
		outcomes[i] = completed
		if _, fails := request(i, o.failRate); fails {
			outcomes[i] = failed
		}
	}
	problems := verify(o, svc, outcomes)
	require.NotEmpty(t, problems, "the books show no charge for orders said to be completed")
	assert.Contains(t, problems[0], "credit in use")

	outcomes[3] = pending
	problems = verify(o, svc, outcomes)
	assert.Contains(t, problems[0], "order 3 ended lost, want completed")
}

func TestBadFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-orders", "0"}, {"-concurrency", "-1"}, {"-store", "disk"}, {"-engine", "temporal"},
		{"-fail-rate", "1.5"}, {"extra"}, {"-nope"},
	} {
		var stdout, stderr bytes.Buffer
		assert.Error(t, run(context.Background(), args, &stdout, &stderr), "%v", args)
		assert.Empty(t, stdout.String(), "%v", args)
	}
}
