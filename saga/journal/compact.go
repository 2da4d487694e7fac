package journal

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/sagaflow/sagaflow/saga"
)

// Compaction copies the records worth keeping into one base segment and
// removes the segments it replaces, so that the directory holds the
// instances in flight, the finished ones still within Options.Retention,
// and the segments written since.
//
// It runs in two phases. On the writer goroutine, between two batches, it
// writes and fsyncs what was queued, picks the finished instances past
// retention, and starts a new segment: every record of the segments up to
// the old one is then written, and every later one goes to the new
// segments. In the background it copies the frames of the old segments,
// except those of the instances it drops, to a temporary file, checking
// each checksum on the way; fsyncs it; renames it over the newest old
// segment with the base flag set; points the index at the records' new
// places; fsyncs the directory; and removes the older segments. A crash
// before the rename leaves the old segments as they were (Open removes the
// temporary file); a crash after it leaves a base that Open recognises as
// superseding the rest. Load holds j.files for reading while it reads, so
// it sees the records either all where they were or all where they went.
//
// The index of finished instances takes part: phase one counts the records
// of the instances past retention from the memory tables and the runs'
// tallies, and lists those of the memory tables; phase two first reads the
// runs that hold some to list them, holding j.idx (so that the index job
// waits meanwhile) but not j.mu, so that writes go on (listing a million
// spilled instances took 1.6 s); before the rename, it rewrites the runs
// into one, without them and pointing at the base, and with the rename
// rebuilds the memory tables the same way.

// Compact compacts the journal now and waits until it is done. It returns
// saga.ErrClosed after Close, or if Close interrupts it while it reads or
// rewrites the index of finished instances; ErrCompacting if a compaction
// (possibly an automatic one) is already running; and an error if reading
// the index of finished instances or writing the base failed (a
// *CorruptionError if a record it copies is damaged). When it fails, the
// journal holds what it held, with a new segment begun for later writes.
func (j *Journal) Compact(ctx context.Context) error {
	done := make(chan error, 1)
	select {
	case j.compactReq <- done:
	case <-j.stopped:
		return saga.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done(): // it goes on; its result is logged
		return ctx.Err()
	}
}

// compaction is the plan of one.
type compaction struct {
	first, old int                 // it replaces the segments from first to old
	now        time.Time           // retention counts back from then
	drop       map[string]struct{} // the finished instances past retention
	// records counts the records the index knows in the old segments,
	// dropped those of the instances in drop.
	records, dropped int
}

// startCompaction is phase one. It runs on the writer goroutine; done, if
// not nil, receives the result. An automatic compaction (auto) goes ahead
// only if at least half of the records would be dropped: copying the rest
// to drop less would cost more than it frees.
func (j *Journal) startCompaction(done chan<- error, auto bool) {
	report := func(err error) {
		if done != nil {
			done <- err
		}
	}
	if j.compacting {
		select {
		case base := <-j.compactDone: // it has ended, and its caller may have returned
			j.compacted(base)
		default:
			report(ErrCompacting)
			return
		}
	}
	j.flushBatches(j.take(true)) // queued before the plan: in the old segments
	now := j.opts.Clock.Now()
	j.mu.Lock()
	poison := j.poison
	var c compaction
	worth := false
	if poison == nil {
		c = j.plan(now)
		worth = !auto || c.dropped > 0 && 2*c.dropped >= c.records
		if worth {
			j.done.expiredInMemory(j.expired(now), c.drop)
		}
	}
	j.mu.Unlock()
	if poison != nil {
		report(poison)
		return
	}
	if !worth {
		j.compactNext = j.seg.n + j.opts.CompactAfter
		return
	}
	c.first, c.old = j.base, j.seg.n
	if err := j.rotate(); err != nil {
		j.fail(err)
		report(err)
		return
	}
	j.compacting = true
	j.bg.Add(1)
	go func() {
		defer j.bg.Done()
		err := j.listExpired(&c)
		if err == nil {
			err = j.writeBase(&c)
		}
		base := 0
		if err == nil {
			base = c.old
		}
		j.compactDone <- base
		report(err)
	}()
}

// plan counts the records, and those of the finished instances past
// retention at now (of those in runs, as their tallies say: see
// finRun.expiredRecords); if it goes ahead, the caller lists the instances
// of the memory tables in c.drop, and listExpired those of the runs. It
// reads nothing, and expects j.mu held.
func (j *Journal) plan(now time.Time) compaction {
	c := compaction{now: now, drop: make(map[string]struct{})}
	for _, e := range j.live {
		c.records += len(e.locs) - e.pending
	}
	records, dropped := j.done.count(j.expired(now))
	c.records += records
	c.dropped = dropped
	return c
}

// expired returns what says, at now, whether an instance that ended at end
// (in Unix nanoseconds) is past retention.
func (j *Journal) expired(now time.Time) func(end int64) bool {
	return func(end int64) bool { return now.Sub(time.Unix(0, end)) > j.opts.Retention }
}

// compacted takes the result of phase two: the new base, or 0 if it
// failed. After a failure, automatic compaction waits until as many
// segments as Options.CompactAfter have been added: retrying after every
// batch would start a new segment each time. It runs on the writer
// goroutine.
func (j *Journal) compacted(base int) {
	j.compacting = false
	if base > 0 {
		j.base = base
	} else {
		j.compactNext = j.seg.n + j.opts.CompactAfter
	}
}

// listExpired adds to c.drop the instances in the runs of the index of
// finished instances that were past retention at c.now, but those that
// ended after phase one, in a segment after c.old: the runs may have
// taken them in since. It holds j.idx, so that the runs it reads stay as
// they are, and j.mu only to take their list.
func (j *Journal) listExpired(c *compaction) error {
	j.idx.Lock()
	defer j.idx.Unlock()
	j.mu.Lock()
	runs := slices.Clone(j.done.runs)
	j.mu.Unlock()
	if err := expiredInRuns(runs, j.expired(c.now), c.drop, c.old, j.quit); err != nil {
		if !errors.Is(err, errStopped) {
			j.log.LogAttrs(context.Background(), slog.LevelError, "journal: compaction could not read the index of finished instances",
				slog.String("dir", j.dir), slog.Any("error", err))
		}
		return fmt.Errorf("journal: compact: %w", err)
	}
	return nil
}

// writeBase is phase two: it replaces the segments of c with a base
// holding their records but those of the instances in c.drop, and forgets
// those instances.
func (j *Journal) writeBase(c *compaction) error {
	ns, err := j.segments()
	final := filepath.Join(j.dir, segmentName(c.old))
	tmp := final + ".tmp"
	var m *moves
	if err == nil {
		m, err = j.copyKept(tmp, ns, c)
	}
	if err == nil {
		err = j.rebase(tmp, final, c, m)
	}
	if err != nil {
		os.Remove(tmp)
		if !errors.Is(err, errStopped) {
			j.log.LogAttrs(context.Background(), slog.LevelError, "journal: compaction failed; segments kept as they were",
				slog.String("dir", j.dir), slog.Any("error", err))
		}
		return fmt.Errorf("journal: compact: %w", err)
	}
	if m.lost > 0 {
		j.log.LogAttrs(context.Background(), slog.LevelError, "journal: compaction could not place records the index points to",
			slog.String("dir", j.dir), slog.Int("records", m.lost))
	}

	// The base is in place and the index points into it; what is left
	// is removing what it replaced. Open removes it if this fails.
	err = syncDir(j.dir)
	removed := 0
	for _, n := range ns {
		if err != nil || n >= c.old {
			break
		}
		err = os.Remove(filepath.Join(j.dir, segmentName(n)))
		removed++
	}
	if err == nil {
		err = syncDir(j.dir)
	}
	if err != nil {
		j.log.LogAttrs(context.Background(), slog.LevelWarn, "journal: compaction could not remove old segments",
			slog.String("dir", j.dir), slog.Any("error", err))
	}
	j.log.LogAttrs(context.Background(), slog.LevelInfo, "journal: compacted",
		slog.String("dir", j.dir), slog.Int("records_kept", m.copied), slog.Int("dropped", len(c.drop)),
		slog.Int("segments_removed", removed))
	return nil
}

// copyKept writes a base segment to path holding the frames of the
// segments ns from c.first to c.old, except those of the instances in
// c.drop, and fsyncs it. It returns where the frames went.
func (j *Journal) copyKept(path string, ns []int, c *compaction) (*moves, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	_, err = w.Write(header(flagBase))
	m := &moves{base: c.old}
	to := int64(headerSize)
	for _, n := range ns {
		if err != nil {
			break
		}
		if n < c.first || n > c.old {
			continue
		}
		err = scanSegment(filepath.Join(j.dir, segmentName(n)), func(from int64, frame, payload []byte) error {
			id, ok := payloadSagaID(payload)
			if !ok {
				return errDecode
			}
			if _, drop := c.drop[string(id)]; drop {
				return nil
			}
			m.add(n, from, to, int64(len(frame)))
			to += int64(len(frame))
			_, err := w.Write(frame)
			return err
		})
	}
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = j.sync(f)
	}
	return m, errors.Join(err, f.Close())
}

// scanSegment calls fn with each frame of the segment at path, its offset
// and its payload, checking the header and every checksum. The frame is
// only valid during the call. Damage is a *CorruptionError.
func scanSegment(path string, fn func(off int64, frame, payload []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	corrupt := func(off int64, reason string) error {
		return &CorruptionError{File: path, Offset: off, Reason: reason}
	}
	buf := make([]byte, headerSize, 64<<10)
	if _, err := io.ReadFull(r, buf); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return err
	}
	if _, ok := readHeader(buf); !ok {
		return corrupt(0, "bad segment header")
	}
	for off := int64(headerSize); ; {
		buf = buf[:frameHeader]
		switch _, err := io.ReadFull(r, buf); {
		case errors.Is(err, io.EOF):
			return nil
		case errors.Is(err, io.ErrUnexpectedEOF):
			return corrupt(off, "record cut short")
		case err != nil:
			return err
		}
		n := binary.LittleEndian.Uint32(buf)
		if n == 0 || n > maxRecord {
			return corrupt(off, "checksum mismatch or broken frame")
		}
		buf = append(buf, make([]byte, n)...)
		if _, err := io.ReadFull(r, buf[frameHeader:]); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return corrupt(off, "record cut short")
			}
			return err
		}
		payload, _, ok := readFrame(buf)
		if !ok {
			return corrupt(off, "checksum mismatch or broken frame")
		}
		if err := fn(off, buf, payload); err != nil {
			if errors.Is(err, errDecode) {
				return corrupt(off, err.Error())
			}
			return err
		}
		off += int64(len(buf))
	}
}

// moves says where compaction copied the frames of the old segments: runs
// of frames that were contiguous before and after.
type moves struct {
	base   int // the segment they went to
	runs   []run
	copied int // frames copied
	lost   int // locations move found in no run
}

type run struct {
	seg      int
	from, to int64 // offsets in seg and in the base
	size     int64
}

// add records that size bytes at from in segment seg went to to.
func (m *moves) add(seg int, from, to, size int64) {
	m.copied++
	if k := len(m.runs); k > 0 {
		if r := &m.runs[k-1]; r.seg == seg && r.from+r.size == from && r.to+r.size == to {
			r.size += size
			return
		}
	}
	m.runs = append(m.runs, run{seg: seg, from: from, to: to, size: size})
}

// find returns where the record at l went.
func (m *moves) find(l loc) (loc, bool) {
	seg, off := l.seg(), l.off()
	i := sort.Search(len(m.runs), func(i int) bool {
		r := &m.runs[i]
		return r.seg > seg || r.seg == seg && r.from > off
	})
	if i == 0 {
		return l, false
	}
	r := &m.runs[i-1]
	if r.seg != seg || off >= r.from+r.size {
		return l, false
	}
	return diskLoc(m.base, r.to+off-r.from), true
}

// place returns where the record at l is once compaction has moved the
// records of the segments up to old, counting those it cannot place.
func (m *moves) place(l loc, old int) loc {
	if l.seg() > old {
		return l
	}
	to, ok := m.find(l)
	if !ok {
		m.lost++
	}
	return to
}

// placeAll places each of locs, in place, and returns them.
func (m *moves) placeAll(locs []loc, old int) []loc {
	for i, l := range locs {
		locs[i] = m.place(l, old)
	}
	return locs
}

// rebase rewrites the runs of the index of finished instances into one,
// without the instances of c.drop and pointing at the base, renames the
// base from tmp to final, and then points the rest of the index at it (see
// move). It holds j.idx throughout, so that the runs stay as they were,
// and j.files and j.mu from the rename on. If it fails, the segments and
// the index are as they were; so they are if Close interrupts the rewrite
// (errStopped), which would otherwise hold Close up for as long as the
// runs take to read, however many instances they hold.
func (j *Journal) rebase(tmp, final string, c *compaction, m *moves) error {
	j.idx.Lock()
	defer j.idx.Unlock()
	j.mu.Lock()
	old := slices.Clone(j.done.runs)
	j.mu.Unlock()
	var locs []loc
	var packed []byte
	run, err := j.done.merge(old, func(e *runEntry) bool {
		if _, drop := c.drop[string(e.id)]; drop {
			return false
		}
		locs = m.placeAll(unpackLocs(locs[:0], e.packed), c.old)
		packed = packLocs(packed[:0], locs)
		e.packed = packed
		return true
	}, j.quit)
	if err != nil {
		return err
	}
	j.files.Lock()
	err = os.Rename(tmp, final)
	if err == nil {
		j.mu.Lock()
		j.move(c, m, run)
		j.mu.Unlock()
	}
	j.files.Unlock()
	if err != nil {
		if run != nil {
			run.close()
		}
		return err
	}
	for _, r := range old {
		r.close() // read only: nothing to lose
	}
	return nil
}

// move points the index at the records' places in the base and forgets
// the dropped instances: the instances in flight and the memory tables of
// finished ones in place, while run, which rebase rewrote from the runs,
// replaces them. It expects j.idx, j.files and j.mu held.
func (j *Journal) move(c *compaction, m *moves, run *finRun) {
	for _, e := range j.live {
		m.placeAll(e.locs[:len(e.locs)-e.pending], c.old)
	}
	d := j.done
	kept := newFinished()
	var locs []loc
	for _, f := range d.tables() {
		f.each(func(h uint64, id, packed []byte, end int64) bool {
			if _, drop := c.drop[string(id)]; drop {
				return true
			}
			locs = m.placeAll(unpackLocs(locs[:0], packed), c.old)
			kept.add(h, string(id), locs, end)
			return true
		})
	}
	d.mem, d.frozen, d.runs = kept, nil, nil
	if run != nil {
		d.runs = []*finRun{run}
	}
	if kept.len() >= d.tune.at {
		j.spill()
	}
}
