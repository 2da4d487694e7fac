package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/orderflow"
	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/journal"
)

// result is what a run measured; its JSON is loadgen's -json output.
type result struct {
	Engine       string  `json:"engine"`
	Store        string  `json:"store"`
	Orders       int     `json:"orders"`
	Concurrency  int     `json:"concurrency"`
	Workers      int     `json:"workers"` // per coordinator; 0 with -engine bare
	Completed    int     `json:"completed"`
	Failed       int     `json:"failed"`
	Stuck        int     `json:"stuck"`
	Lost         int     `json:"lost"`
	OrdersPerSec float64 `json:"orders_per_sec"`
	ElapsedSec   float64 `json:"elapsed_sec"`
	P50Ms        float64 `json:"p50_ms"`
	P95Ms        float64 `json:"p95_ms"`
	P99Ms        float64 `json:"p99_ms"`
	MaxMs        float64 `json:"max_ms"`
	PeakHeapMB   float64 `json:"peak_heap_mb"`
	GoVersion    string  `json:"go_version"`
	GOMAXPROCS   int     `json:"gomaxprocs"`
	Verified     bool    `json:"verified"`
	// WarmupSec is how long the processors were kept busy before the
	// run (see warmUp).
	WarmupSec float64 `json:"warmup_sec"`
	// Coordinators ran the orders, order i on coordinator i mod
	// Coordinators; PerCoordinator counts the orders that ended on each.
	Coordinators   int   `json:"coordinators,omitempty"`
	PerCoordinator []int `json:"per_coordinator,omitempty"`
	// Journal is what the journal wrote, with -store journal.
	Journal *journalStats `json:"journal,omitempty"`
	// Postgres is where the orders ran and how fast the database
	// commits, with -store postgres.
	Postgres *postgresStats `json:"postgres,omitempty"`
}

// journalStats are the journal's counters over a run: how well group
// commit shared the fsyncs, and how much went to disk.
type journalStats struct {
	Records        uint64  `json:"records"`
	Fsyncs         uint64  `json:"fsyncs"`
	RecordsPerSync float64 `json:"records_per_fsync"`
	MB             float64 `json:"mb_written"`
}

// The catalogue the orders buy from, and the address that no courier
// serves: orders shipped there fail at shipping and are compensated.
const (
	products    = 16
	customers   = 64
	unreachable = "nowhere"
)

var errNoCourier = errors.New("no courier serves this address")

// outcome is how an order ended.
type outcome uint8

const (
	pending outcome = iota
	completed
	failed
	stuck
)

// services are the bundled services, with shipping failing for the
// unreachable address.
type services struct {
	payment   *orderflow.PaymentService
	inventory *orderflow.InventoryService
	shipping  failingShipping
	stock     int // initial stock of each product
}

type failingShipping struct{ *orderflow.ShippingService }

func (s failingShipping) CreateShipment(ctx context.Context, req orderflow.ShipmentRequest) (string, error) {
	if req.Customer.Address == unreachable {
		return "", saga.Permanent(errNoCourier)
	}
	return s.ShippingService.CreateShipment(ctx, req)
}

// keepLast is how many operations each service remembers by their keys.
// An order makes one per service, so the services forget an order's keys
// once that many orders have started after it: far more than start while
// any order of a run is in flight (a few times the orders in flight). It
// is a count, not a time, so that the services' memory follows the orders
// in flight, as the engine's does, and neither the orders finished nor
// how fast they come. An undo that comes after its key is forgotten finds
// nothing to undo (a refund, no charge), and the books do not balance:
// verify says so.
func (o options) keepLast() int {
	return max(64*o.concurrency, 1<<16)
}

func newServices(orders, keepLast int) *services {
	s := &services{
		payment:   orderflow.NewPaymentService(orderflow.PaymentConfig{KeepLast: keepLast}),
		inventory: orderflow.NewInventoryService(orderflow.InventoryConfig{KeepLast: keepLast}),
		shipping:  failingShipping{orderflow.NewShippingService(orderflow.ShippingConfig{KeepLast: keepLast})},
		stock:     2 * orders, // enough for every order: stock never fails one
	}
	for p := range products {
		_ = s.inventory.AddProduct(orderflow.Product{Name: productNames[p], Price: price(p), Stock: s.stock})
	}
	return s
}

// The names of the products and the customers' emails, made once.
var (
	productNames [products]string
	emails       [customers]string
	productIndex = map[string]int{}
)

func init() {
	for p := range products {
		productNames[p] = "product-" + strconv.Itoa(p)
		productIndex[productNames[p]] = p
	}
	for c := range customers {
		emails[c] = "c" + strconv.Itoa(c) + "@example.com"
	}
}

func price(p int) orderflow.Money { return orderflow.Money(199 + 100*p) }

// request is order i: one or two lines, failing at shipping for a
// fraction failRate of the orders, spread evenly.
func request(i int, failRate float64) (orderflow.OrderRequest, bool) {
	fails := int(float64(i+1)*failRate) != int(float64(i)*failRate)
	addr := "1 Main St"
	if fails {
		addr = unreachable
	}
	items := []orderflow.Item{{Name: productNames[i%products], Price: price(i % products), Quantity: 1 + i%3}}
	if i%2 == 1 {
		q := (i + 7) % products
		if q != i%products {
			items = append(items, orderflow.Item{Name: productNames[q], Price: price(q), Quantity: 1})
		}
	}
	return orderflow.OrderRequest{
		Customer: orderflow.Customer{Name: "Customer", Email: emails[i%customers], Address: addr},
		Items:    items,
	}, fails
}

// runner runs orders. start places order i in slot, one of -concurrency,
// and reports whether it was placed; the runner then calls the finish it
// was made with once the order has ended, with the time of its end, which
// may be before start returns. An order that was not placed never ends.
type runner interface {
	start(ctx context.Context, slot, i int, req orderflow.OrderRequest) bool
	close() error
}

// finishFunc is told that order i, in slot, ended oc at the time at, and
// reports whether it took that end (see dealer.finish).
type finishFunc func(slot, i int, oc outcome, at time.Time) bool

// placers returns how many goroutines place the orders, 0 for one per
// order in flight that runs its orders itself, one after another (see
// dealer). With the journal or PostgreSQL, placing an order waits for its
// first write to be durable: then one per order in flight. With the memory
// store, placing an order does not wait, and one per processor places them
// as fast as a larger number would.
func (o options) placers() int {
	switch {
	case o.engine == "bare":
		return 0
	case o.store == "journal" || o.store == "postgres":
		return o.concurrency
	}
	return runtime.GOMAXPROCS(0)
}

// workersOrDefault returns each coordinator's workers: -workers, or with
// the journal or PostgreSQL one per order in flight (every step waits for
// an fsync or a round trip to the database, and the orders waiting should
// share one rather than queue for a worker), or with the memory store four
// per processor. The services run in this process and never wait, so a
// worker keeps its processor busy: more workers only make the Go
// scheduler's run queue longer, and an order whose worker is preempted
// mid-order, or waits for a service's lock, waits for every worker ahead
// of it in that queue. The engine's default of 256, meant for actions that
// wait on the network, gave a p99 11% higher and a max twice as long as 8
// workers did on 2 processors, at the same rate of orders (100,000 orders,
// 8 pairs run in turn: p99 15.1 -> 13.4 ms, max 38 -> 19 ms).
func (o options) workersOrDefault() int {
	switch {
	case o.workers > 0:
		return o.workers
	case o.store == "journal" || o.store == "postgres":
		return o.concurrency
	}
	return 4 * runtime.GOMAXPROCS(0)
}

// load runs the orders and verifies the outcome.
func load(ctx context.Context, o options, stderr io.Writer, cpuProfile io.Writer) (result, []string, error) {
	clk := clock.Real()
	warm := warmUp(ctx, clk, o.warmup)
	// One set of services for every coordinator, as replicas of a
	// service share its downstream services: an order may run on any.
	svc := newServices(o.orders, o.keepLast())
	t := new(tally)
	d := newDealer(o, clk, t, o.placers())
	var r runner
	var err error
	if o.engine == "bare" {
		r = &bare{svc: svc, clk: clk, finish: d.finish}
	} else if r, err = newEngine(ctx, o, clk, svc, d.finish); err != nil {
		return result{}, nil, err
	}

	res := result{
		Engine: o.engine, Store: o.store, Orders: o.orders, Concurrency: o.concurrency, Workers: o.workersOrDefault(),
		GoVersion: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0), WarmupSec: warm.Seconds(),
	}
	if o.engine == "bare" {
		res.Store, res.Workers = "none", 0
	}
	if cpuProfile != nil {
		if err := pprof.StartCPUProfile(cpuProfile); err != nil {
			return result{}, nil, errors.Join(err, r.close())
		}
	}
	heap := newHeapSampler(clk)
	stopProgress := progress(stderr, clk, &d.done, o.orders)

	start := clk.Now()
	d.run(ctx, r)
	elapsed := clk.Now().Sub(start)
	if cpuProfile != nil {
		pprof.StopCPUProfile()
	}
	ended := d.done.Load() // before close, which may end orders of an interrupted run
	stopProgress()
	res.PeakHeapMB = float64(heap.stop()) / (1 << 20)
	if e, ok := r.(*engine); ok {
		res.Coordinators = len(e.nodes)
		for _, n := range e.nodes {
			res.PerCoordinator = append(res.PerCoordinator, int(n.ran.Load()))
		}
		if j, ok := e.nodes[0].store.(*journal.Journal); ok {
			st := j.Stats()
			res.Journal = &journalStats{
				Records: st.Records, Fsyncs: st.Syncs, MB: float64(st.Bytes) / (1 << 20),
				RecordsPerSync: float64(st.Records) / float64(max(st.Syncs, 1)),
			}
		}
		res.Postgres = e.pg // close says whether it dropped the schema
	}
	closeErr := r.close()

	res.ElapsedSec = elapsed.Seconds()
	res.OrdersPerSec = float64(ended) / elapsed.Seconds()
	if pg := res.Postgres; pg != nil {
		pg.OrdersPerRawCommit = res.OrdersPerSec / pg.RawCommitsPerSec
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	res.P50Ms, res.P95Ms, res.P99Ms = ms(t.latency.quantile(0.50)), ms(t.latency.quantile(0.95)), ms(t.latency.quantile(0.99))
	res.MaxMs = ms(t.latency.longest())
	res.Completed, res.Failed, res.Stuck = int(t.completed.Load()), int(t.failed.Load()), int(t.stuck.Load())
	res.Lost = o.orders - res.Completed - res.Failed - res.Stuck
	problems := verify(o, svc, t)
	if closeErr != nil {
		problems = append(problems, "shutdown: "+closeErr.Error())
	}
	res.Verified = len(problems) == 0
	return res, problems, nil
}

// warmUp keeps every processor busy for d, or until ctx ends, with loops
// that neither allocate nor call anything, and returns how long it took.
// On the 2-core machine of the README, processors that were idle work
// slowly for the first 100 ms or so after, and a cold run of 100,000
// orders on the memory store had most of its slowest orders there: after
// half a second of these loops, p99 was 7.0 ms rather than 10.2, max 9.4
// rather than 16.9, and 8% more orders ended per second (eight runs of
// each, in turns). Running orders with no engine first gained about as
// much; these loops do it without warming anything but the processors.
func warmUp(ctx context.Context, clk clock.Clock, d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	start := clk.Now()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() { spin(ctx) })
	}
	wg.Wait()
	return clk.Now().Sub(start)
}

// spin computes until ctx ends.
func spin(ctx context.Context) {
	x := uint64(1)
	for ctx.Err() == nil {
		for range 1 << 12 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	spun.Add(x)
}

// spun keeps what spin computes, so that the compiler keeps its loops.
var spun atomic.Uint64

// dealer hands out the orders to a runner, -concurrency at a time, and
// takes them back as they end: each order in flight holds a slot, and
// the end of an order frees its slot for the next. Placing an order does
// not wait for its end, as a service's request handler would not; the
// engine's event hook hands the end back. A goroutine per order in flight
// waiting for its end, as before, cost the memory store's runs 15% of
// their rate in the load generator's own scheduling (100,000 orders:
// 113-137k -> 136-160k orders/s, in turns). A runner that ends each order
// before start returns (bare) gets a goroutine per slot instead, which
// keeps its slot: passing slots around cost it 8%.
type dealer struct {
	o       options
	clk     clock.Clock
	t       *tally
	placers int // 0: a goroutine per slot, keeping it

	next, done atomic.Int64   // orders handed out, orders ended
	held       []held         // by slot
	owner      []atomic.Int64 // by slot: 1 + the order it holds, 0 if none
	free       chan int       // slots free for an order, with placers
	stop       chan struct{}
	stopOnce   sync.Once

	// open counts the orders placed and not ended, and one more until
	// every order has been handed out; ended is closed when it is zero.
	open  atomic.Int64
	ended chan struct{}
}

// held is the order that a slot holds, and when it was placed.
type held struct {
	i     int
	req   orderflow.OrderRequest
	fails bool
	t0    time.Time
}

func newDealer(o options, clk clock.Clock, t *tally, placers int) *dealer {
	d := &dealer{
		o: o, clk: clk, t: t, placers: placers,
		held: make([]held, o.concurrency), owner: make([]atomic.Int64, o.concurrency),
		stop: make(chan struct{}), ended: make(chan struct{}),
	}
	if placers > 0 {
		d.free = make(chan int, o.concurrency)
		for slot := range o.concurrency {
			d.free <- slot
		}
	}
	d.open.Store(1)
	return d
}

// run places the orders and returns when every order has ended, or when
// ctx ends.
func (d *dealer) run(ctx context.Context, r runner) {
	var wg sync.WaitGroup
	if d.placers == 0 {
		for slot := range d.o.concurrency {
			wg.Go(func() {
				// Yield after each order, as a request handler waits for
				// the network between requests: a goroutine that went on
				// would keep its processor for its whole time slice, and
				// the orders of the others would wait up to 100 ms
				// (bare: p99 22-30 -> 4-14 ms; 5% fewer orders/s).
				for d.placeIn(ctx, r, slot) {
					runtime.Gosched()
				}
			})
		}
	}
	for range d.placers {
		wg.Go(func() { d.place(ctx, r) })
	}
	wg.Wait()
	d.close()
	select {
	case <-d.ended:
	case <-ctx.Done():
	}
}

// place places orders in free slots until every order has been handed
// out or ctx ends.
func (d *dealer) place(ctx context.Context, r runner) {
	for {
		var slot int
		select {
		case slot = <-d.free:
		case <-d.stop:
			return
		case <-ctx.Done():
			return
		}
		if !d.placeIn(ctx, r, slot) {
			d.free <- slot
			d.stopOnce.Do(func() { close(d.stop) })
			return
		}
	}
}

// placeIn places the next order in slot, and reports false if every order
// has been handed out or ctx has ended.
func (d *dealer) placeIn(ctx context.Context, r runner, slot int) bool {
	i := int(d.next.Add(1) - 1)
	if i >= d.o.orders || ctx.Err() != nil {
		return false
	}
	req, fails := request(i, d.o.failRate)
	d.held[slot] = held{i: i, req: req, fails: fails, t0: d.clk.Now()}
	d.open.Add(1)
	d.owner[slot].Store(int64(i) + 1)
	if !r.start(ctx, slot, i, req) {
		d.finish(slot, i, pending, time.Time{})
	}
	return true
}

// finish takes back order i from slot: it ended oc at the time at (or did
// not run, if at is zero). The slot may take another order as soon as it
// returns. An end that slot does not hold, or that came before, is
// ignored, and finish reports false: a store may give a second end for an
// order whose placing failed, or ends of orders left unfinished by an
// earlier run.
func (d *dealer) finish(slot, i int, oc outcome, at time.Time) bool {
	if slot < 0 || slot >= len(d.owner) || !d.owner[slot].CompareAndSwap(int64(i)+1, 0) {
		return false
	}
	h := &d.held[slot]
	if at.IsZero() {
		at = d.clk.Now()
	}
	// Orders handed out after this one, while it ran.
	overlap := min(int(d.next.Load()), d.o.orders) - h.i - 1
	d.t.record(h.i, h.req, h.fails, oc, at.Sub(h.t0), overlap)
	d.done.Add(1)
	if d.placers > 0 {
		d.free <- slot
	}
	d.close()
	return true
}

// close counts down one open order, or the handing out.
func (d *dealer) close() {
	if d.open.Add(-1) == 0 {
		close(d.ended)
	}
}

// tally is what the orders did, taken as each ends, so that a run of a
// million orders needs no more memory than one of a thousand: counts by
// outcome, latencies, and the credit and stock that the completed orders
// should hold in the services' books. It is safe for concurrent use.
type tally struct {
	completed, failed, stuck, ended atomic.Int64
	latency                         histogram
	used                            [customers]atomic.Int64 // credit in use, by customer
	held                            [products]atomic.Int64  // units held, by product
	overlap                         atomic.Int64            // the most orders handed out while one ran

	mu     sync.Mutex
	wrong  []string // the first few orders that ended other than they should
	nWrong int
}

// maxWrong is how many wrong outcomes a tally describes.
const maxWrong = 5

// record takes order i, which was to fail if fails, ended oc after
// latency, while overlap more orders were handed out.
func (t *tally) record(i int, req orderflow.OrderRequest, fails bool, oc outcome, latency time.Duration, overlap int) {
	t.ended.Add(1)
	t.latency.record(latency)
	for m := t.overlap.Load(); int64(overlap) > m && !t.overlap.CompareAndSwap(m, int64(overlap)); m = t.overlap.Load() {
	}
	switch oc {
	case completed:
		t.completed.Add(1)
	case failed:
		t.failed.Add(1)
	case stuck:
		t.stuck.Add(1)
	}
	want := completed
	if fails {
		want = failed
	}
	if oc != want {
		t.mu.Lock()
		if t.nWrong++; t.nWrong <= maxWrong {
			t.wrong = append(t.wrong, fmt.Sprintf("order %d ended %v, want %v", i, oc, want))
		}
		t.mu.Unlock()
		return
	}
	if oc == completed {
		for _, it := range req.Items {
			t.used[i%customers].Add(int64(it.Subtotal()))
			t.held[productIndex[it.Name]].Add(int64(it.Quantity))
		}
	}
}

// verify checks that every order ended as it was meant to, and the
// services' books against the orders: credit in use is the total of the
// completed orders, stock held is their quantities, and every unit is
// either held or available. If the books are wrong and an order ran while
// more orders were handed out than the services remember, it says so.
func verify(o options, svc *services, t *tally) []string {
	problems := slices.Clone(t.wrong)
	if t.nWrong > maxWrong {
		problems = append(problems, fmt.Sprintf("… %d orders ended wrong in all", t.nWrong))
	}
	if never := o.orders - int(t.ended.Load()); never > 0 {
		problems = append(problems, fmt.Sprintf("%d orders never ran", never))
	}
	books := len(problems)
	for c := range customers {
		if _, used := svc.payment.Credit(emails[c]); used != orderflow.Money(t.used[c].Load()) {
			problems = append(problems, fmt.Sprintf("%s has %v of credit in use, want %v", emails[c], used, orderflow.Money(t.used[c].Load())))
		}
	}
	for p := range products {
		available, held := svc.inventory.Stock(productNames[p])
		if want := int(t.held[p].Load()); held != want || available+held != svc.stock {
			problems = append(problems, fmt.Sprintf("%s: %d available and %d held, want %d held of %d",
				productNames[p], available, held, want, svc.stock))
		}
	}
	if keep := o.keepLast(); len(problems) > books && t.overlap.Load() >= int64(keep) {
		problems = append(problems, fmt.Sprintf("%d orders were handed out while one ran, and the services remember the last %d keys: undos that came later found nothing to undo",
			t.overlap.Load(), keep))
	}
	return problems
}

func (oc outcome) String() string {
	return [...]string{"lost", "completed", "failed", "stuck"}[oc]
}

// bare runs an order with plain calls: charge, reserve, ship, and undo in
// reverse on failure. It is the cost of the work without an engine.
type bare struct {
	svc    *services
	clk    clock.Clock
	finish finishFunc
}

func (b *bare) start(ctx context.Context, slot, i int, req orderflow.OrderRequest) bool {
	oc := b.order(ctx, i, req)
	b.finish(slot, i, oc, b.clk.Now())
	return true
}

func (b *bare) order(ctx context.Context, i int, req orderflow.OrderRequest) outcome {
	id := "o" + strconv.Itoa(i)
	var total orderflow.Money
	for _, it := range req.Items {
		total += it.Subtotal()
	}
	key := func(step string) string { return id + "/" + step }
	if _, err := b.svc.payment.Charge(ctx, orderflow.ChargeRequest{Key: key("payment"), OrderID: id, Customer: req.Customer, Amount: total}); err != nil {
		return failed
	}
	if _, err := b.svc.inventory.Reserve(ctx, orderflow.ReserveRequest{Key: key("inventory"), OrderID: id, Items: req.Items}); err != nil {
		_ = b.svc.payment.Refund(ctx, orderflow.UndoRequest{Key: key("payment"), OrderID: id})
		return failed
	}
	if _, err := b.svc.shipping.CreateShipment(ctx, orderflow.ShipmentRequest{Key: key("shipping"), OrderID: id, Customer: req.Customer, Items: req.Items}); err != nil {
		_ = b.svc.inventory.Release(ctx, orderflow.UndoRequest{Key: key("inventory"), OrderID: id})
		_ = b.svc.payment.Refund(ctx, orderflow.UndoRequest{Key: key("payment"), OrderID: id})
		return failed
	}
	return completed
}

func (b *bare) close() error { return nil }

// engine runs orders on one orderflow.System per coordinator, order i on
// coordinator i mod N, and learns of their ends from the engine's event
// hook, without a subscription per order.
type engine struct {
	nodes  []*node
	db     *database      // with -store postgres
	pg     *postgresStats // with -store postgres
	dir    string         // a temporary journal directory to remove
	prefix string         // of this run's order IDs
	finish finishFunc
}

// node is one coordinator: its System and store, and with PostgreSQL its
// own connection pool, as one replica of a service would have.
type node struct {
	sys   *orderflow.System
	store saga.Store
	pool  *sql.DB
	ran   atomic.Int64 // orders that ended here
}

func newEngine(ctx context.Context, o options, clk clock.Clock, svc *services, finish finishFunc) (*engine, error) {
	e := &engine{finish: finish}
	if err := e.open(ctx, o, clk, svc); err != nil {
		return nil, errors.Join(err, e.close())
	}
	return e, nil
}

// open opens the stores, measures the database's raw commit rate with
// PostgreSQL, and starts the coordinators.
func (e *engine) open(ctx context.Context, o options, clk clock.Clock, svc *services) error {
	var err error
	if o.store == "postgres" {
		if e.db, err = openDatabase(ctx, o); err != nil {
			return err
		}
		// Order IDs of this run only: a schema given with -schema may
		// hold an earlier run's.
		e.prefix = e.db.run + "-"
	}
	if o.store == "journal" && o.dir != "" {
		// A directory given with -dir keeps the orders of earlier runs
		// (unfinished ones are refused: see checkUnfinished), finished
		// ones for a day, whose IDs this run's would repeat.
		e.prefix = newRunID() + "-"
	}
	for k := range o.coordinators {
		n := &node{}
		e.nodes = append(e.nodes, n)
		switch o.store {
		case "memory":
			// Keep a few finished orders for reading, drop the rest:
			// memory follows the orders in flight.
			n.store = saga.NewMemoryStore(saga.MemoryConfig{MaxFinished: 10_000})
		case "journal":
			dir := o.dir
			if dir == "" {
				if dir, err = os.MkdirTemp("", "loadgen-journal-"); err != nil {
					return err
				}
				e.dir = dir
			}
			j, err := journal.Open(dir, journal.Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				return err
			}
			n.store = j
		case "postgres":
			pool, store, err := e.db.openStore(ctx, o, k)
			if err != nil {
				return err
			}
			n.pool, n.store = pool, store
		}
		n.sys, err = orderflow.New(orderflow.Config{
			Engine: saga.Config{
				Store:  n.store,
				Logger: slog.New(slog.DiscardHandler),
				// An order's end reaches the dealer, which places
				// the next, before the worker that ended it lets go
				// of it: at most one such order per worker.
				MaxInFlight:     o.concurrency + o.workersOrDefault(),
				Workers:         o.workersOrDefault(),
				WaitForCapacity: true,
				Hooks:           saga.Hooks{OnEvent: func(ev saga.Event) { e.onEvent(n, ev) }},
			},
			Payment:   svc.payment,
			Inventory: svc.inventory,
			Shipping:  svc.shipping,
		})
		if err != nil {
			return err
		}
	}
	if e.db != nil || o.dir != "" {
		if err := e.checkUnfinished(ctx, o); err != nil {
			return err
		}
	}
	if e.db != nil {
		pools := make([]*sql.DB, len(e.nodes))
		for k, n := range e.nodes {
			pools[k] = n.pool
		}
		workers := min(o.concurrency, o.coordinators*o.pool)
		if e.pg, err = e.db.rawCommits(ctx, clk, pools, workers, o.rawTime); err != nil {
			return err
		}
		e.pg.Pool = o.pool
	}
	for _, n := range e.nodes {
		if err := n.sys.Startup(ctx); err != nil {
			return err
		}
	}
	return nil
}

// checkUnfinished refuses a schema or a journal directory that holds
// unfinished orders of an earlier run: the coordinators would resume them
// against this run's services, whose books would then not add up.
func (e *engine) checkUnfinished(ctx context.Context, o options) error {
	n := e.nodes[0]
	ids, err := n.store.Unfinished(ctx, n.sys.Definition().Name())
	if err != nil || len(ids) == 0 {
		return err
	}
	if e.db != nil {
		return fmt.Errorf("schema %s holds %d unfinished orders of an earlier run: drop it or use another -schema",
			e.db.schema, len(ids))
	}
	return fmt.Errorf("%s holds %d unfinished orders of an earlier run: remove it or use another -dir", o.dir, len(ids))
}

// newRunID returns a random name for a run.
func newRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// onEvent hands an order's end, with the time of its terminal event, to
// the dealer. Order IDs are "<prefix><order>.<slot>".
func (e *engine) onEvent(n *node, ev saga.Event) {
	var oc outcome
	switch ev.Type {
	case saga.EventSagaCompleted:
		oc = completed
	case saga.EventSagaCompensated:
		oc = failed
	case saga.EventSagaStuck:
		oc = stuck
	default:
		return
	}
	id, ours := strings.CutPrefix(ev.SagaID, e.prefix)
	if !ours {
		return
	}
	order, slot, _ := strings.Cut(id, ".")
	i, err1 := strconv.Atoi(order)
	c, err2 := strconv.Atoi(slot)
	if err1 != nil || err2 != nil {
		return
	}
	if e.finish(c, i, oc, ev.Time) {
		n.ran.Add(1)
	}
}

// start places order i. The order's end comes through onEvent, so that
// its latency ends at its terminal event.
func (e *engine) start(ctx context.Context, slot, i int, req orderflow.OrderRequest) bool {
	req.OrderID = e.prefix + strconv.Itoa(i) + "." + strconv.Itoa(slot)
	rc, err := e.nodes[i%len(e.nodes)].sys.ProcessOrder(ctx, req)
	return err == nil && !rc.Duplicate
}

// close stops the coordinators, then closes the stores and pools, removes
// a temporary journal and drops a schema of the run's own.
func (e *engine) close() error {
	var err error
	for _, n := range e.nodes {
		if n.sys != nil {
			err = errors.Join(err, n.sys.Shutdown(context.Background()))
		}
	}
	for _, n := range e.nodes {
		if n.store != nil {
			err = errors.Join(err, n.store.Close())
		}
		if n.pool != nil {
			err = errors.Join(err, n.pool.Close())
		}
	}
	if e.dir != "" {
		err = errors.Join(err, os.RemoveAll(e.dir))
	}
	if e.db != nil {
		dropped, dbErr := e.db.close()
		err = errors.Join(err, dbErr)
		if e.pg != nil {
			e.pg.SchemaDropped = dropped
		}
	}
	return err
}

// heapSampler records the peak of the live heap, sampled every 10ms.
type heapSampler struct {
	stopc chan struct{}
	done  chan uint64
}

func newHeapSampler(clk clock.Clock) *heapSampler {
	h := &heapSampler{stopc: make(chan struct{}), done: make(chan uint64)}
	go func() {
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		read := func() {
			metrics.Read(sample)
			peak = max(peak, sample[0].Value.Uint64())
		}
		tick := clk.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			read()
			select {
			case <-tick.C():
			case <-h.stopc:
				read()
				h.done <- peak
				return
			}
		}
	}()
	return h
}

func (h *heapSampler) stop() uint64 {
	close(h.stopc)
	return <-h.done
}

// progress rewrites one line on stderr while the orders run, if stderr is
// a terminal. The returned function stops it.
func progress(w io.Writer, clk clock.Clock, done *atomic.Int64, total int) (stop func()) {
	f, ok := w.(*os.File)
	if !ok {
		return func() {}
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return func() {}
	}
	stopc, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		start := clk.Now()
		tick := clk.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		var last int64
		lastAt := start
		for {
			select {
			case <-tick.C():
			case <-stopc:
				fmt.Fprint(w, "\r\033[K")
				return
			}
			now, n := clk.Now(), done.Load()
			rate := float64(n-last) / now.Sub(lastAt).Seconds()
			last, lastAt = n, now
			eta := "-"
			if rate > 0 {
				eta = time.Duration(float64(int64(total)-n) / rate * float64(time.Second)).Round(time.Second).String()
			}
			fmt.Fprintf(w, "\r\033[K%d/%d orders  %.0f orders/s  %s elapsed  ETA %s",
				n, total, rate, now.Sub(start).Round(time.Second), eta)
		}
	}()
	return func() {
		close(stopc)
		<-finished
	}
}
