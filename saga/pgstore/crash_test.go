//go:build linux

package pgstore_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/pgstore"
)

// The crash test keeps two processes running sagas on one schema, kills
// one of them with SIGKILL at a random moment, starts another in its
// place, and repeats; the survivors take over the dead ones' sagas. At the
// end every saga must have completed, every acknowledged one among them,
// with each step's effect recorded once. SAGAFLOW_PG_CRASH_KILLS sets the
// number of kills (default 6).
const (
	crashSchemaEnv = "SAGAFLOW_PG_CRASH_SCHEMA"
	crashNameEnv   = "SAGAFLOW_PG_CRASH_NAME"
	crashKillsEnv  = "SAGAFLOW_PG_CRASH_KILLS"
)

var crashSteps = []string{"validate", "charge", "reserve", "ship"}

// child is one process of the crash test.
type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	acks  atomic.Int64  // sagas it has started
	said  chan struct{} // a nudge when it acknowledges one
	idle  chan struct{} // closed when it has stopped starting sagas
}

func TestCrashTakeover(t *testing.T) {
	if os.Getenv(crashSchemaEnv) != "" {
		t.Skip("in the child")
	}
	kills := 6
	if v := os.Getenv(crashKillsEnv); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, crashKillsEnv)
		kills = n
	}
	db := database(t)
	schema := newSchema(t, db)
	s, err := pgstore.Open(t.Context(), db, pgstore.Options{Schema: schema})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = db.ExecContext(t.Context(), `CREATE TABLE "`+schema+`".effects (key text PRIMARY KEY, node text NOT NULL)`)
	require.NoError(t, err)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d kills", seed, kills)
	rng := rand.New(rand.NewPCG(seed, 0))

	var mu sync.Mutex
	acked, ended := map[string]bool{}, map[string]bool{}
	endedCh := make(chan struct{}, 1)
	var readers sync.WaitGroup
	spawn := func(n int) *child {
		c := &child{name: fmt.Sprintf("p%d", n), said: make(chan struct{}, 1), idle: make(chan struct{})}
		c.cmd = exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		c.cmd.Env = append(os.Environ(), crashSchemaEnv+"="+schema, crashNameEnv+"="+c.name)
		c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		c.cmd.Stderr = os.Stderr
		out, err := c.cmd.StdoutPipe()
		require.NoError(t, err)
		c.stdin, err = c.cmd.StdinPipe()
		require.NoError(t, err)
		require.NoError(t, c.cmd.Start())
		readers.Go(func() {
			lines := bufio.NewScanner(out)
			for lines.Scan() {
				kind, id, _ := strings.Cut(lines.Text(), " ")
				mu.Lock()
				switch kind {
				case "ACK":
					acked[id] = true
					c.acks.Add(1)
					nudge(c.said)
				case "END":
					ended[id] = true
					nudge(endedCh)
				case "IDLE":
					close(c.idle)
				}
				mu.Unlock()
			}
		})
		return c
	}
	kill := func(c *child) {
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		_ = c.cmd.Wait()
	}

	procs := []*child{spawn(0), spawn(1)}
	for k := range kills {
		victim := procs[rng.IntN(2)]
		want := victim.acks.Load() + 1 + rng.Int64N(40)
		for victim.acks.Load() < want {
			<-victim.said
		}
		kill(victim)
		for i := range procs {
			if procs[i] == victim {
				procs[i] = spawn(k + 2)
			}
		}
	}

	// Stop starting sagas; wait until every saga in the database has ended.
	for _, c := range procs {
		require.NoError(t, c.stdin.Close())
		<-c.idle
	}
	timeout := time.After(2 * time.Minute) // a safety net, not a wait
	for {
		unfinished := queryIDs(t, db, `SELECT saga_id FROM "`+schema+`".instances WHERE NOT finished`)
		mu.Lock()
		left := 0
		for _, id := range unfinished {
			if !ended[id] {
				left++
			}
		}
		mu.Unlock()
		if left == 0 {
			break
		}
		select {
		case <-endedCh:
		case <-timeout:
			t.Fatalf("%d sagas did not end", left)
		}
	}
	for _, c := range procs {
		kill(c)
	}
	readers.Wait()

	all := queryIDs(t, db, `SELECT saga_id FROM "`+schema+`".instances`)
	t.Logf("%d sagas, %d acknowledged, %d processes killed", len(all), len(acked), kills)
	store, err := pgstore.Open(t.Context(), db, pgstore.Options{Schema: schema})
	require.NoError(t, err)
	defer store.Close()
	for id := range acked {
		events, err := store.Load(t.Context(), id)
		if assert.NoError(t, err, "acknowledged saga %s", id) {
			assert.Equal(t, saga.EventSagaCompleted, events[len(events)-1].Type, id)
		}
	}
	assert.Empty(t, queryIDs(t, db, `SELECT saga_id FROM "`+schema+`".instances WHERE NOT finished`), "unfinished sagas")
	var effects int
	require.NoError(t, db.QueryRowContext(t.Context(), `SELECT count(*) FROM "`+schema+`".effects`).Scan(&effects))
	assert.Equal(t, len(crashSteps)*len(all), effects, "one effect per step of every saga")
	var takenOver int
	require.NoError(t, db.QueryRowContext(t.Context(), `SELECT count(DISTINCT split_part(key, '/', 1))
		FROM "`+schema+`".effects WHERE node <> split_part(key, '-', 1)`).Scan(&takenOver))
	t.Logf("%d sagas finished by another process than the one that started them", takenOver)
	assert.Positive(t, takenOver, "sagas taken over from a killed process")
}

// nudge wakes whoever waits on ch, without blocking.
func nudge(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func queryIDs(t *testing.T, db *sql.DB, query string) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), query)
	require.NoError(t, err)
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	return ids
}

// TestCrashChild is the process that TestCrashTakeover starts and kills.
// It starts sagas until its stdin closes, printing ACK <id> for each, and
// END <id> for every saga it sees end, its own or taken over.
func TestCrashChild(t *testing.T) {
	schema, name := os.Getenv(crashSchemaEnv), os.Getenv(crashNameEnv)
	if schema == "" {
		t.Skip("started by TestCrashTakeover")
	}
	db := database(t)
	store, err := pgstore.Open(context.Background(), db, pgstore.Options{Schema: schema, LeaseTTL: time.Second})
	require.NoError(t, err)
	steps := make([]saga.Step[order], len(crashSteps))
	for i, step := range crashSteps {
		steps[i] = saga.Step[order]{Name: step, Action: func(ctx context.Context, _ *order) error {
			info, _ := saga.Info(ctx)
			_, err := db.ExecContext(ctx, `INSERT INTO "`+schema+`".effects (key, node) VALUES ($1, $2)
				ON CONFLICT (key) DO NOTHING`, info.IdempotencyKey, name)
			return err
		}}
	}
	def, err := saga.NewDefinition("order", steps)
	require.NoError(t, err)
	coord, err := saga.New(def, saga.Config{
		Store: store, Logger: slog.New(slog.DiscardHandler), ClaimInterval: 100 * time.Millisecond,
		Workers: 16, MaxInFlight: 64, WaitForCapacity: true,
	})
	require.NoError(t, err)
	sub := coord.Subscribe(saga.SubscribeOptions{Buffer: 1 << 16})
	var out sync.Mutex
	say := func(format string, args ...any) {
		out.Lock()
		defer out.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	go func() {
		for e := range sub.Events() {
			if e.Ends() {
				say("END %s", e.SagaID)
			}
		}
	}()
	require.NoError(t, coord.Startup(context.Background()))

	stop := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	for n := 0; ; n++ {
		select {
		case <-stop:
			say("IDLE")
			select {} // keep finishing and taking over until killed
		default:
		}
		id := fmt.Sprintf("%s-%04d", name, n)
		if _, err := coord.Start(context.Background(), order{N: n}, saga.WithID(id)); err != nil {
			say("ERR %s: %v", id, err)
			continue
		}
		say("ACK %s", id)
	}
}
