//go:build linux

package orderflow_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/orderflow"
	"github.com/sagaflow/sagaflow/saga"
)

// The crash test runs orders in a child process on a directory, kills it
// with SIGKILL at random moments, restarts it, and at the end checks the
// guarantees: every acknowledged order exists and ended, nothing was
// applied twice, and credit and stock balance. SAGAFLOW_CRASH_KILLS sets
// the number of kills (default 20) for longer runs.
const (
	crashDirEnv   = "SAGAFLOW_CRASH_DIR"
	crashGenEnv   = "SAGAFLOW_CRASH_GEN"
	crashKillsEnv = "SAGAFLOW_CRASH_KILLS"
	crashStock    = 3000
	crashPrice    = 1250
	crashLimit    = 600 * crashPrice
)

var crashCustomers = []string{"ada@example.com", "bob@example.com", "cy@example.com", "di@example.com"}

func TestCrashRecovery(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("in the child")
	}
	kills := 20
	if v := os.Getenv(crashKillsEnv); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, crashKillsEnv)
		kills = n
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d kills", seed, kills)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()

	acked := map[string]bool{}
	for gen := range kills {
		var stderr bytes.Buffer
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashGenEnv+"="+strconv.Itoa(gen))
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())

		// Kill it after a random number of acknowledgements: sometimes
		// before it has recovered, mostly with orders at every stage.
		want, got := rng.IntN(60), 0
		lines := bufio.NewScanner(out)
		for got < want && lines.Scan() {
			if id, ok := strings.CutPrefix(lines.Text(), "ACK "); ok {
				acked[id] = true
				got++
			}
		}
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		go io.Copy(io.Discard, out) // drain, so that Wait can finish
		_ = cmd.Wait()
		require.Equal(t, want, got, "child %d died early:\n%s", gen, stderr.String())
	}
	require.NotEmpty(t, acked)

	// Recover in this process and let every order finish.
	sys, err := orderflow.New(orderflow.Config{
		Dir:    dir,
		Engine: saga.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
	})
	require.NoError(t, err)
	require.NoError(t, sys.Startup(context.Background()))
	defer sys.Shutdown(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		ids, err := sys.Coordinator().Store().Unfinished(ctx, orderflow.SagaName)
		require.NoError(t, err)
		if len(ids) == 0 {
			break
		}
		_, err = sys.Wait(ctx, ids[0])
		require.NoError(t, err)
	}

	f := &fixture{
		t:         t,
		sys:       sys,
		payment:   sys.Payment().(*orderflow.PaymentService),
		inventory: sys.Inventory().(*orderflow.InventoryService),
		shipping:  sys.Shipping().(*orderflow.ShippingService),
	}
	orders := map[string]orderflow.OrderStatus{}
	known := func(id string) {
		if _, ok := orders[id]; ok {
			return
		}
		st, err := sys.GetStatus(ctx, id)
		require.NoError(t, err, "order %s", id)
		require.True(t, st.Status.Terminal(), "%s ended %v", id, st.Status)
		orders[id] = st
	}
	for id := range acked {
		known(id)
	}
	for _, c := range f.payment.Charges() {
		known(c.OrderID)
	}
	for _, r := range f.inventory.Reservations() {
		known(r.OrderID)
	}
	for _, s := range f.shipping.Shipments() {
		known(s.OrderID)
	}
	counts := map[orderflow.Status]int{}
	for _, st := range orders {
		counts[st.Status]++
	}
	t.Logf("%d orders acknowledged, %d known: %v; recovered at the last start: %d",
		len(acked), len(orders), counts, sys.Health(ctx).Recovered)
	f.ledger(orders)
	left, held := f.inventory.Stock("widget")
	assert.Equal(t, crashStock, left+held, "stock balances")
	for _, email := range crashCustomers {
		limit, used := f.payment.Credit(email)
		assert.Equal(t, orderflow.Money(crashLimit), limit)
		assert.LessOrEqual(t, used, limit)
	}
}

// TestCrashChild is the child of TestCrashRecovery: it places orders until
// it is killed, printing "ACK <id>" once ProcessOrder has returned.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("runs only as the child of TestCrashRecovery")
	}
	gen := os.Getenv(crashGenEnv)
	sys, err := orderflow.New(orderflow.Config{
		Dir:         dir,
		Engine:      saga.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), WaitForCapacity: true, MaxInFlight: 200},
		StepTimeout: 5 * time.Second,
	})
	require.NoError(t, err)
	require.NoError(t, sys.Startup(context.Background()))
	inventory := sys.Inventory().(*orderflow.InventoryService)
	if available, _ := inventory.Stock("widget"); available < 0 {
		require.NoError(t, inventory.AddProduct(orderflow.Product{Name: "widget", Price: crashPrice, Stock: crashStock}))
	}
	payment := sys.Payment().(*orderflow.PaymentService)
	for _, email := range crashCustomers {
		if limit, _ := payment.Credit(email); limit < 0 {
			require.NoError(t, payment.SetCreditLimit(email, crashLimit))
		}
	}
	// Latency widens the windows a kill can land in.
	payment.Delay(300 * time.Microsecond)
	inventory.Delay(300 * time.Microsecond)
	shipping := sys.Shipping().(*orderflow.ShippingService)
	shipping.Delay(300 * time.Microsecond)

	for i := 0; i < 100_000; i++ {
		id := fmt.Sprintf("g%s-%05d", gen, i)
		if i%9 == 4 {
			shipping.FailOrder(id, saga.Permanent(errNoCourier))
		}
		_, err := sys.ProcessOrder(context.Background(), orderflow.OrderRequest{
			OrderID:  id,
			Customer: orderflow.Customer{Name: "Customer", Email: crashCustomers[i%len(crashCustomers)], Address: "1 Main St"},
			Items:    []orderflow.Item{{Name: "widget", Price: crashPrice, Quantity: 1 + i%3}},
		})
		require.NoError(t, err)
		fmt.Printf("ACK %s\n", id)
	}
	select {} // wait to be killed
}
