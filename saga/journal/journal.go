// Package journal is a durable saga.Store in a directory: an append-only
// journal of checksummed records with group commit, crash recovery and
// compaction. It is the embedded durable default for a service that must
// survive crashes without a database server.
//
// Every Create and Append is one record, framed with its length and a
// CRC-32C checksum. Concurrent writers are batched: one fsync covers the
// records that arrived while the previous one ran, a batch being written
// as soon as it holds 512 records or 1 MiB so that the writers behind it
// can go on queueing meanwhile, and no call returns before the fsync
// covering its record has returned (unless Options.SyncInterval trades
// that away). Open replays the records, verifies every checksum, truncates
// a torn tail left by a crash, and fails with a *CorruptionError on damage
// anywhere else. A write or fsync error poisons the journal: every later
// call fails with it until the journal is opened again, so nothing is
// acknowledged that may not be on disk.
//
// The logs stay on disk: the journal keeps in memory an index of where
// each instance's records are, with what Create and Append check for the
// instances in flight, and Load reads the records back. The index of the
// finished instances kept spills to temporary files in the directory
// beside the segments (unlinked as soon as created, rebuilt from the
// segments at Open, freed by Close): a finished instance costs the heap
// about 1.5 bytes once spilled, so memory follows the instances in flight
// rather than the ones kept. A record can be loaded
// from the moment it is queued, so Load may show events whose Append has
// not yet returned (and that a crash before their fsync would lose), as a
// database shows a transaction to the connection that is committing it;
// compaction drops finished instances older than the retention period.
// One process at a time may open a directory: a second Open fails with
// ErrLocked. The lock is flock(2), so the journal runs on Unix systems
// (Linux, macOS, the BSDs); elsewhere Open fails.
package journal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/saga"
)

// Errors of the journal. Store errors (not found, conflict, closed …) are
// the saga package's.
var (
	// ErrLocked means another Journal holds the directory.
	ErrLocked = errors.New("journal: directory is in use by another journal")
	// ErrCorrupt is wrapped by *CorruptionError.
	ErrCorrupt = errors.New("journal: corrupt")
	// ErrCompacting means Compact was called while a compaction, possibly
	// an automatic one, was running.
	ErrCompacting = errors.New("journal: a compaction is already running")
)

// CorruptionError reports damage that is not a torn tail: a record that
// fails its checksum or cannot be decoded, followed by valid records, or a
// damaged segment that is not the last. Open returns it, and so do Load
// and Compact when a record they read back is damaged. The file is left as
// it is, for inspection.
type CorruptionError struct {
	File   string // path of the segment
	Offset int64  // where the bad record starts
	Reason string
}

// Error names the file, the offset and the damage.
func (e *CorruptionError) Error() string {
	return fmt.Sprintf("journal: corrupt record in %s at offset %d: %s", e.File, e.Offset, e.Reason)
}

// Unwrap returns ErrCorrupt.
func (e *CorruptionError) Unwrap() error { return ErrCorrupt }

// Options configures a Journal. The zero value is durable and works.
type Options struct {
	// Clock times SyncInterval and compaction's retention. Defaults to
	// clock.Real().
	Clock clock.Clock
	// Logger receives recovery and compaction reports. Defaults to
	// slog.Default().
	Logger *slog.Logger
	// SyncInterval, when positive, acknowledges writes once they are
	// written to the file and fsyncs at most once per interval. A crash of
	// the process then loses nothing, but a crash of the machine or the
	// OS may lose the writes of the last interval, which the coordinator
	// had already acted on. Defaults to 0: every acknowledgement waits
	// for its fsync.
	SyncInterval time.Duration
	// SegmentSize is the size at which the journal starts a new segment
	// file, at most 256 GiB. Defaults to 64 MiB.
	SegmentSize int64
	// Retention is how long a finished instance (completed or
	// compensated) is kept after its last event before compaction drops
	// it. Defaults to 24 hours.
	Retention time.Duration
	// CompactAfter is how many segments accumulate before the journal
	// considers compacting them on its own. It compacts when at least
	// half of their records belong to instances past Retention (copying
	// the rest to drop less would cost more than it frees; for instances
	// whose index entries are on disk it counts by 64ths of Retention,
	// leaving out the one that straddles it), and otherwise looks again
	// once as many more segments have accumulated. Defaults to 4;
	// negative turns automatic compaction off (Compact still compacts
	// whatever there is to drop).
	CompactAfter int
}

func (o Options) withDefaults() (Options, error) {
	switch {
	case o.SyncInterval < 0:
		return o, fmt.Errorf("%w: negative SyncInterval", saga.ErrInvalidArgument)
	case o.SegmentSize < 0:
		return o, fmt.Errorf("%w: negative SegmentSize", saga.ErrInvalidArgument)
	case o.SegmentSize > maxSegmentSize:
		return o, fmt.Errorf("%w: SegmentSize over %d", saga.ErrInvalidArgument, int64(maxSegmentSize))
	case o.Retention < 0:
		return o, fmt.Errorf("%w: negative Retention", saga.ErrInvalidArgument)
	}
	if o.Clock == nil {
		o.Clock = clock.Real()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.SegmentSize == 0 {
		o.SegmentSize = 64 << 20
	}
	if o.Retention == 0 {
		o.Retention = 24 * time.Hour
	}
	if o.CompactAfter == 0 {
		o.CompactAfter = 4
	}
	return o, nil
}

// Journal is a durable saga.Store in a directory. All methods are safe for
// concurrent use.
type Journal struct {
	dir  string
	opts Options
	log  *slog.Logger
	lock *os.File

	// files is held for reading while records are read back from the
	// segments, and for writing while compaction moves them.
	files sync.RWMutex

	// idx is held by whoever changes the runs of the index of finished
	// instances: the index job and compaction (see spill.go).
	idx sync.Mutex

	mu       sync.Mutex       // guards what follows, up to the writer's fields
	live     map[string]*live // instances in flight
	done     *finIndex        // finished instances
	created  uint64           // instances created so far, for Unfinished's order
	cur      *batch           // the batch records are queued to
	full     []*batch         // batches sealed for the writer, oldest first
	inflight []*batch         // the batches the writer is writing
	serial   uint32           // of the last batch
	spares   []spare          // written batches' buffers, for the next ones
	poison   error            // the write error that broke the journal
	closed   bool

	// Set by Open; tests replace them before any call.
	seal  struct{ records, bytes int } // sealRecords and sealBytes
	yield func()                       // runtime.Gosched, for the settler

	recovering bool // Open is replaying the segments: no other goroutine runs

	// Owned by the writer goroutine once Open returns.
	seg     *segment
	asking  bool                 // a question to the settler is unanswered
	fsync   func(*os.File) error // (*os.File).Sync; tests replace it
	dirty   bool                 // written since the last fsync (SyncInterval mode)
	base    int                  // number of the oldest segment
	wake    chan struct{}
	asked   chan uint32 // to the settler: tell when the batch's writers have run
	settled chan uint32 // from the settler
	quit    chan struct{}
	stopped chan struct{}

	compactReq  chan chan<- error
	compactDone chan int // phase two's new base, or 0 if it failed
	compacting  bool     // owned by the writer
	compactNext int      // owned by the writer: no automatic compaction before this segment
	bg          sync.WaitGroup

	stats struct{ records, writes, syncs, bytes atomic.Uint64 }
}

// batch is records that the writer writes with one write, and fsyncs
// with one fsync, with other batches perhaps.
type batch struct {
	serial uint32
	buf    []byte   // their frames
	recs   []queued // where they are in buf, and whose they are
	pos    int64    // where the writer wrote buf in its segment
	done   chan struct{}
	err    error
}

// spare is a written batch's buffers, kept for a later batch: a few
// batches are under way at a time, one filling while the writer writes
// the others.
type spare struct {
	buf  []byte
	recs []queued
}

const maxSpares = 4

// queued is a record in a batch: the frame at off in the batch's buffer,
// which is e.locs[i].
type queued struct {
	e   *live
	i   int
	off int
}

// Stats counts what a Journal has written since Open.
type Stats struct {
	Records uint64 // Creates and Appends written
	Writes  uint64 // batches written, one write call each
	Syncs   uint64 // fsyncs of segment files
	Bytes   uint64 // bytes written to segments
}

// Stats returns the journal's counters. Records/Syncs is the group
// commit's batching factor.
func (j *Journal) Stats() Stats {
	return Stats{
		Records: j.stats.records.Load(),
		Writes:  j.stats.writes.Load(),
		Syncs:   j.stats.syncs.Load(),
		Bytes:   j.stats.bytes.Load(),
	}
}

var _ saga.Store = (*Journal)(nil)

// Open opens the journal in dir, creating the directory if needed, and
// recovers what it holds: it verifies every record, truncates a torn tail
// (and logs how much it dropped), and rebuilds the index. It returns an
// error wrapping ErrLocked if another Journal has dir open, and a
// *CorruptionError if a record before the tail is damaged.
func Open(dir string, opts Options) (*Journal, error) {
	return open(dir, opts, defaultTuning)
}

// open is Open with the index of finished instances tuned as tune says.
func open(dir string, opts Options, tune spillTuning) (*Journal, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	lock, err := lockDir(filepath.Join(dir, "LOCK"))
	if err != nil {
		return nil, err
	}
	j := &Journal{
		dir:     dir,
		opts:    opts,
		log:     opts.Logger,
		lock:    lock,
		live:    make(map[string]*live),
		done:    newFinIndex(dir, tune, opts.Retention),
		fsync:   (*os.File).Sync,
		yield:   runtime.Gosched,
		wake:    make(chan struct{}, 1),
		asked:   make(chan uint32, 1),
		settled: make(chan uint32, 1),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),

		compactReq:  make(chan chan<- error),
		compactDone: make(chan int, 1),
	}
	j.recovering = true
	err = j.recover()
	j.recovering = false
	if err != nil {
		if j.seg != nil {
			j.seg.f.Close()
		}
		j.done.close()
		lock.Close()
		return nil, err
	}
	j.seal.records, j.seal.bytes = sealRecords, sealBytes
	j.bg.Add(1)
	go j.settler()
	go j.writer()
	return j, nil
}

// Create implements saga.Store.
func (j *Journal) Create(ctx context.Context, events []saga.Event) error {
	if len(events) == 0 {
		return fmt.Errorf("%w: no events", saga.ErrInvalidEvent)
	}
	id := events[0].SagaID
	if err := saga.CheckAppend(id, 0, events); err != nil {
		return err
	}
	return j.write(ctx, &record{kind: kindCreate, sagaID: id, events: events})
}

// Append implements saga.Store.
func (j *Journal) Append(ctx context.Context, sagaID string, expected uint64, events []saga.Event) error {
	if err := saga.CheckAppend(sagaID, expected, events); err != nil {
		return err
	}
	return j.write(ctx, &record{kind: kindAppend, sagaID: sagaID, expected: expected, events: events})
}

// write queues r and waits until the fsync that covers it has returned.
func (j *Journal) write(ctx context.Context, r *record) error {
	b, err := j.queue(ctx, r)
	if err != nil {
		return err
	}
	// Not ctx: once queued, the record is written whatever the caller
	// does, and the caller must learn whether it was.
	<-b.done
	return b.err
}

// queue checks r against the index, adds it to the batch being filled,
// applies it to the index, wakes the writer if the batch is new or now
// full, and returns the batch.
func (j *Journal) queue(ctx context.Context, r *record) (*batch, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Encoded outside the lock, so that the callers' encodings overlap.
	scratch := getScratch()
	defer putScratch(scratch)
	frame, err := appendFrame((*scratch)[:0], r)
	*scratch = frame
	if err != nil {
		return nil, err
	}
	j.mu.Lock()
	var e *live
	err = j.usable()
	if err == nil {
		e, err = j.check(r)
	}
	if err != nil {
		j.mu.Unlock()
		return nil, err
	}
	first := j.cur == nil
	if first {
		j.serial++
		j.cur = &batch{serial: j.serial, done: make(chan struct{})}
		if k := len(j.spares) - 1; k >= 0 {
			j.cur.buf, j.cur.recs = j.spares[k].buf, j.spares[k].recs
			j.spares = j.spares[:k]
		}
	}
	b := j.cur
	e = j.apply(r, e, pendingLoc(b.serial, len(b.recs)))
	b.recs = append(b.recs, queued{e: e, i: len(e.locs) - 1, off: len(b.buf)})
	b.buf = append(b.buf, frame...)
	sealed := len(b.recs) >= j.seal.records || len(b.buf) >= j.seal.bytes
	if sealed {
		j.full = append(j.full, b)
		j.cur = nil
	}
	j.mu.Unlock()

	// The writer takes batches whole: the record that starts one wakes it
	// for all that follow, and so does the one that fills it.
	if first || sealed {
		select {
		case j.wake <- struct{}{}:
		default:
		}
	}
	return b, nil
}

// usable returns why the journal takes no calls, if it does not. It expects
// j.mu held.
func (j *Journal) usable() error {
	switch {
	case j.closed:
		return saga.ErrClosed
	case j.poison != nil:
		return fmt.Errorf("journal: unusable after a write error (reopen it): %w", j.poison)
	}
	return nil
}

// Ping implements saga.Store: it fails once the journal is closed or
// poisoned.
func (j *Journal) Ping(context.Context) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.usable()
}

// Durable implements saga.Store: logs survive Close and crashes.
func (j *Journal) Durable() bool { return true }

// Close writes and fsyncs what is queued, closes the files (which frees the
// disk space of the index's runs) and releases the directory. Later calls
// fail with saga.ErrClosed; Close itself may be called again and then does
// nothing.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	j.mu.Unlock()
	close(j.quit)
	<-j.stopped

	var err error
	if j.seg != nil {
		if j.dirty && j.poison == nil {
			err = j.sync(j.seg.f)
		}
		err = errors.Join(err, j.seg.f.Close())
	}
	j.mu.Lock()
	err = errors.Join(err, j.done.close())
	j.mu.Unlock()
	return errors.Join(err, j.lock.Close())
}

// A batch is sealed, and written at once, when it holds sealRecords
// records or sealBytes bytes: more would make its fsync little cheaper per
// record, and the writers that queue while it is written and fsynced form
// the next batch meanwhile, instead of all waiting together and leaving the
// CPUs idle during every fsync. A batch that does not fill is written once
// its writers have settled (see settler).
const (
	sealRecords = 512
	sealBytes   = 1 << 20
)

// writer writes and fsyncs the queued batches until Close.
func (j *Journal) writer() {
	defer close(j.stopped)
	var tick clock.Ticker
	var tickC <-chan time.Time
	if j.opts.SyncInterval > 0 {
		tick = j.opts.Clock.NewTicker(j.opts.SyncInterval)
		defer tick.Stop()
		tickC = tick.C()
	}
	for {
		select {
		case <-j.wake:
			j.flush(0)
		case serial := <-j.settled:
			j.asking = false
			j.flush(serial)
		case <-tickC:
			j.syncNow()
		case done := <-j.compactReq:
			j.startCompaction(done, false)
		case base := <-j.compactDone:
			j.compacted(base)
		case <-j.quit:
			j.flushBatches(j.take(true)) // what was queued before Close
			j.bg.Wait()
			return
		}
	}
}

// settler tells the writer, through j.settled, when the goroutines that
// were ready to run as it asked about a batch have run, and so have queued
// their records in it if they were about to: it yields the processor and
// answers when it gets it back. With one P (GOMAXPROCS=1) the writers
// would otherwise run only while the writer waits, and every batch would
// hold a single record.
func (j *Journal) settler() {
	defer j.bg.Done()
	for {
		select {
		case serial := <-j.asked:
			j.yield()
			select {
			case j.settled <- serial:
			case <-j.quit:
				return
			}
		case <-j.quit:
			return
		}
	}
}

// flush writes the sealed batches, then the one being filled once its
// writers have settled (settled is the serial of the batch the settler
// says so about, or 0), until nothing is queued or it waits for the
// settler.
func (j *Journal) flush(settled uint32) {
	for {
		j.mu.Lock()
		full, cur := len(j.full) > 0, uint32(0)
		if j.cur != nil {
			cur = j.cur.serial
		}
		j.mu.Unlock()
		switch {
		case full:
			j.flushBatches(j.take(false))
		case cur == 0:
			return
		case settled == cur:
			settled = 0
			j.flushBatches(j.take(true))
		default:
			// One question at a time: j.asked and j.settled have room
			// for it. An answer about a batch that has since been
			// sealed comes back as settled != cur, and the writer asks
			// again then.
			if !j.asking {
				j.asking = true
				j.asked <- cur
			}
			return
		}
		if j.opts.CompactAfter > 0 && j.seg.n-j.base >= j.opts.CompactAfter && j.seg.n >= j.compactNext {
			j.startCompaction(nil, true)
		}
	}
}

// take hands the sealed batches to the writer, and with all the one being
// filled too.
func (j *Journal) take(all bool) []*batch {
	j.mu.Lock()
	defer j.mu.Unlock()
	bs := j.full
	j.full = nil
	if all && j.cur != nil {
		bs = append(bs, j.cur)
		j.cur = nil
	}
	j.inflight = bs
	return bs
}

// flushBatches writes bs (as take returned them) with one fsync, gives
// their records their places on disk, and tells their writers how it went.
func (j *Journal) flushBatches(bs []*batch) {
	if len(bs) == 0 {
		return
	}
	j.mu.Lock()
	poison := j.poison
	j.mu.Unlock()
	if poison != nil {
		j.finishBatches(bs, 0, fmt.Errorf("journal: unusable after a write error (reopen it): %w", poison))
		return
	}
	seg := j.seg.n
	var err error
	written := 0
	for _, b := range bs {
		b.pos = j.seg.size
		if err = j.seg.write(b.buf); err != nil {
			break
		}
		written++
		j.stats.records.Add(uint64(len(b.recs)))
		j.stats.writes.Add(1)
		j.stats.bytes.Add(uint64(len(b.buf)))
	}
	if err == nil {
		if j.opts.SyncInterval > 0 {
			j.dirty = true
		} else {
			err = j.sync(j.seg.f)
		}
	}
	for _, b := range bs[:written] {
		j.resolve(b, seg, b.pos)
	}
	if err == nil && j.seg.size >= j.opts.SegmentSize {
		err = j.rotate()
	}
	if err != nil {
		j.fail(err)
	}
	j.finishBatches(bs, written, err)
}

// finishBatches tells the writers of bs how it went, and keeps the buffers
// of the first written ones for later batches unless they have grown too
// big to keep.
func (j *Journal) finishBatches(bs []*batch, written int, err error) {
	j.mu.Lock()
	j.inflight = nil
	for _, b := range bs[:written] {
		if cap(b.buf) <= maxSpare && len(j.spares) < maxSpares {
			clear(b.recs)
			j.spares = append(j.spares, spare{b.buf[:0], b.recs[:0]})
		}
	}
	j.mu.Unlock()
	for _, b := range bs {
		b.err = err
		close(b.done)
	}
}

// syncNow fsyncs what SyncInterval mode has written since the last fsync.
func (j *Journal) syncNow() {
	if !j.dirty {
		return
	}
	j.dirty = false
	if err := j.sync(j.seg.f); err != nil {
		j.fail(err)
	}
}

// fail poisons the journal with err.
func (j *Journal) fail(err error) {
	j.mu.Lock()
	if j.poison == nil {
		j.poison = err
	}
	j.mu.Unlock()
	j.log.LogAttrs(context.Background(), slog.LevelError, "journal: write failed; the journal refuses writes until reopened",
		slog.String("dir", j.dir), slog.Any("error", err))
}

// sync fsyncs f and counts it.
func (j *Journal) sync(f *os.File) error {
	j.stats.syncs.Add(1)
	return j.fsync(f)
}
