package journal

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"os"
	"slices"
	"time"

	"github.com/sagaflow/sagaflow/saga"
)

// The index of finished instances holds every finished instance still
// within retention: a day of orders by default, millions. So that the
// journal's memory follows the instances in flight rather than those, it
// keeps the recently finished ones in a table in memory (finished, about
// 70 bytes each) and, once that holds spillTuning.at of them, writes them
// out as a run (finRun, about 1.5 bytes each in memory) in the background.
// Runs of about one size are merged, fanIn at a time, so that there are
// only a few of each size and a lookup checks a few Bloom filters: a
// Create of a new ID reads no run in the common case, and a Load of a
// spilled instance one block.
//
// The index job, which writes and merges runs, holds j.idx while it works
// and j.mu only to take its work and to put the result in place; lookups
// go on meanwhile, reading the memory tables it writes (which nothing adds
// to any more) and the runs it merges (which never change). Compaction
// holds j.idx while it rewrites the runs, so the two never change them at
// once. Lock order: j.idx, j.files, j.mu.

// spillTuning sets how the index of finished instances spills to runs.
// Open uses defaultTuning; tests lower the numbers and hook the rest.
type spillTuning struct {
	at        int // instances in the memory table that make a run
	fanIn     int // runs of about one size that are merged into one
	block     int // bytes of a run's block, about
	bloomBits int // bits of Bloom filter per instance; 0 for none (every lookup reads a block)

	hash   func(id string) uint64                             // nil for maphash with a random seed
	readAt func(f *os.File, b []byte, off int64) (int, error) // nil for (*os.File).ReadAt
	write  func(f *os.File, b []byte) (int, error)            // nil for (*os.File).Write; tests fail it as a full disk does
}

// defaultTuning keeps about 2 x 64k instances in memory while the
// background job keeps up (a full table and the one being written), some
// 9 MB, and reads 4 KiB per lookup in a run. While the job is busy with a
// long merge or a compaction rewrites the runs, the memory table grows
// with what finishes meanwhile.
var defaultTuning = spillTuning{at: 64 << 10, fanIn: 4, block: 4 << 10, bloomBits: 10}

// endTallies is how many stretches of time within retention a run tallies
// the ends of its instances by (see endTally).
const endTallies = 64

// finIndex is the index of finished instances: a memory table, memory
// tables being written out, and runs. Each instance is in one of them.
// Its methods expect j.mu held.
type finIndex struct {
	dir    string
	tune   spillTuning
	width  int64       // of the stretches runs tally ends by, in nanoseconds
	mem    *finished   // where finished instances go
	frozen []*finished // tables being written to a run, or left by a write that failed; never added to
	runs   []*finRun   // newest first
	buf    []byte      // the block a lookup read last
	busy   bool        // the index job is running
	idle   chan struct{}
}

func newFinIndex(dir string, tune spillTuning, retention time.Duration) *finIndex {
	if tune.hash == nil {
		seed := maphash.MakeSeed()
		tune.hash = func(id string) uint64 { return maphash.String(seed, id) }
	}
	return &finIndex{
		dir:   dir,
		tune:  tune,
		width: max(int64(retention/endTallies), 1),
		mem:   newFinished(),
	}
}

// tables returns the memory tables: the one instances go to, and those
// being written to runs.
func (d *finIndex) tables() []*finished {
	return append([]*finished{d.mem}, d.frozen...)
}

// find returns the packed locations of the records of the finished
// instance id (valid until d is used again) and when it ended, or ok
// false if d does not hold it. It fails only if it cannot read a run: it
// never answers "not found" for an instance it could not check. A lookup
// that gets past a run's Bloom filter reads a block of it with j.mu held,
// so that writes wait for that read.
func (d *finIndex) find(id string) (packed []byte, end int64, ok bool, err error) {
	h := d.tune.hash(id)
	if packed, end, ok := d.mem.get(h, id); ok {
		return packed, end, true, nil
	}
	for i := len(d.frozen) - 1; i >= 0; i-- {
		if packed, end, ok := d.frozen[i].get(h, id); ok {
			return packed, end, true, nil
		}
	}
	for _, r := range d.runs {
		if packed, end, ok, err = r.find(h, id, &d.buf); ok || err != nil {
			return packed, end, ok, err
		}
	}
	return nil, 0, false, nil
}

// has reports whether d holds id, as find does.
func (d *finIndex) has(id string) (bool, error) {
	_, _, ok, err := d.find(id)
	return ok, err
}

// add adds id, which d must not hold, and reports whether the memory table
// is full.
func (d *finIndex) add(id string, locs []loc, end int64) (full bool) {
	d.mem.add(d.tune.hash(id), id, locs, end)
	return d.mem.len() >= d.tune.at
}

// count returns how many records the instances of d have, and how many of
// those belong to instances that expired says are past retention: exactly
// for those in memory, and for those in runs as their tallies say (see
// finRun.expiredRecords), so that it reads nothing.
func (d *finIndex) count(expired func(end int64) bool) (records, dropped int) {
	for _, f := range d.tables() {
		f.each(func(_ uint64, _, packed []byte, end int64) bool {
			n := countLocs(packed)
			records += n
			if expired(end) {
				dropped += n
			}
			return true
		})
	}
	for _, r := range d.runs {
		records += r.records
		dropped += r.expiredRecords(expired)
	}
	return records, dropped
}

// expiredInMemory adds to drop the IDs in the memory tables that expired
// says are past retention. It expects j.mu held.
func (d *finIndex) expiredInMemory(expired func(end int64) bool, drop map[string]struct{}) {
	for _, f := range d.tables() {
		f.each(func(_ uint64, id, _ []byte, end int64) bool {
			if expired(end) {
				drop[string(id)] = struct{}{}
			}
			return true
		})
	}
}

// expiredInRuns adds to drop the IDs in runs that expired says are past
// retention and whose records are all in segments up to old, reading the
// runs that may hold some. An instance that ended in a later segment is
// left: compaction would drop its records up to old but not that one. It
// returns errStopped once stop is closed. The runs must stay open
// meanwhile: the caller holds j.idx.
func expiredInRuns(runs []*finRun, expired func(end int64) bool, drop map[string]struct{}, old int, stop <-chan struct{}) error {
	var locs []loc
	k := 0
	for _, r := range runs {
		if !expired(r.minEnd) {
			continue
		}
		stopped := false
		err := r.eachEntry(func(e runEntry) bool {
			if k%4096 == 0 && isClosed(stop) {
				stopped = true
				return false
			}
			k++
			if !expired(e.end) {
				return true
			}
			locs = unpackLocs(locs[:0], e.packed)
			for _, l := range locs {
				if l.seg() > old {
					return true
				}
			}
			drop[string(e.id)] = struct{}{}
			return true
		})
		if err != nil {
			return err
		}
		if stopped {
			return errStopped
		}
	}
	return nil
}

// close closes the runs, which frees their disk space. No index job may
// be running.
func (d *finIndex) close() error {
	var err error
	for _, r := range d.runs {
		err = errors.Join(err, r.close())
	}
	d.runs = nil
	if err != nil {
		return &runError{err}
	}
	return nil
}

// writeTables writes the instances of tables, which nothing adds to any
// more, to a new run. It needs no lock.
func (d *finIndex) writeTables(tables []*finished) (*finRun, error) {
	type ref struct {
		finEntry
		table int
	}
	n := 0
	for _, f := range tables {
		n += f.len()
	}
	w, err := newRunWriter(d.dir, n, &d.tune, d.width)
	if err != nil {
		return nil, err
	}
	// A table's parts hold the hashes of one top byte each, in order:
	// sorting part by part sorts them all.
	var part []ref
	var e runEntry
	for p := range finParts {
		part = part[:0]
		for t, f := range tables {
			for _, e := range f.parts[p].ents {
				part = append(part, ref{e, t})
			}
		}
		slices.SortFunc(part, func(a, b ref) int { return cmp.Compare(a.hash, b.hash) })
		for _, r := range part {
			e.hash, e.end = r.hash, r.end
			e.id, e.packed = tables[r.table].record(r.at)
			if err := w.add(&e); err != nil {
				w.abort()
				return nil, err
			}
		}
	}
	return w.finish()
}

// errStopped ends the work on the runs of an index job or a compaction
// that the journal's closing interrupted.
var errStopped = fmt.Errorf("journal: interrupted by Close: %w", saga.ErrClosed)

// isClosed reports whether stop is closed; a nil stop never is.
func isClosed(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// merge writes the instances of runs to a new run, each one passed through
// keep unless keep is nil: keep may change its packed locations (pointing
// them at its own buffer), and returns false to leave it out. It returns
// nil if no instance is left, and errStopped once stop is closed. It needs
// no lock: runs never change.
func (d *finIndex) merge(runs []*finRun, keep func(e *runEntry) bool, stop <-chan struct{}) (*finRun, error) {
	if len(runs) == 0 {
		return nil, nil
	}
	n := 0
	for _, r := range runs {
		n += r.n
	}
	width := d.width
	if keep == nil {
		width = 0 // the tallies of runs add up
	}
	w, err := newRunWriter(d.dir, n, &d.tune, width)
	if err != nil {
		return nil, err
	}
	scanners := make([]runScanner, len(runs))
	heads := make([]runEntry, len(runs))
	more := make([]bool, len(runs))
	advance := func(i int) (err error) {
		heads[i], more[i], err = scanners[i].scan()
		return err
	}
	for i, r := range runs {
		scanners[i].r = r
		if err := advance(i); err != nil {
			w.abort()
			return nil, err
		}
	}
	var e runEntry
	for k := 0; ; k++ {
		if k%4096 == 0 && isClosed(stop) {
			w.abort()
			return nil, errStopped
		}
		next := -1
		for i := range heads {
			if more[i] && (next < 0 || heads[i].hash < heads[next].hash) {
				next = i
			}
		}
		if next < 0 {
			break
		}
		e = heads[next]
		if keep == nil || keep(&e) {
			err = w.add(&e)
		}
		if err == nil {
			err = advance(next)
		}
		if err != nil {
			w.abort()
			return nil, err
		}
	}
	r, err := w.finish()
	if r != nil && keep == nil {
		r.ends = addTallies(runs)
	}
	return r, err
}

// addTallies returns the tallies of the ends of runs together: at most
// maxTallies, adding up neighbours in time past that.
func addTallies(runs []*finRun) []endTally {
	var all []endTally
	for _, r := range runs {
		all = append(all, r.ends...)
	}
	slices.SortFunc(all, func(a, b endTally) int { return cmp.Compare(a.last, b.last) })
	for len(all) > maxTallies {
		half := all[:0]
		for i := 0; i < len(all); i += 2 {
			t := all[i]
			if i+1 < len(all) {
				t = endTally{last: all[i+1].last, records: t.records + all[i+1].records}
			}
			half = append(half, t)
		}
		all = half
	}
	return slices.Clip(all)
}

// pickMerge returns the newest stretch of runs, d.runs[from:to], of at
// least fanIn runs of one size class, or from == to if there is none. A
// run's size class is how many times fanIn divides its size in memory
// tables.
func (d *finIndex) pickMerge() (from, to int) {
	class := func(r *finRun) int {
		c := 0
		for s := d.tune.at * d.tune.fanIn; r.n >= s && s <= math.MaxInt/d.tune.fanIn; s *= d.tune.fanIn {
			c++
		}
		return c
	}
	for from < len(d.runs) {
		c := class(d.runs[from])
		to = from + 1
		for to < len(d.runs) && class(d.runs[to]) == c {
			to++
		}
		if to-from >= d.tune.fanIn {
			return from, to
		}
		from = to
	}
	return 0, 0
}

// spill starts the index job unless it is running or the journal is
// closed; while Open recovers, it does the job's work at once. It expects
// j.mu held, except while Open recovers.
func (j *Journal) spill() {
	d := j.done
	switch {
	case j.recovering:
		j.maintain()
	case d.busy || j.closed:
	default:
		d.busy, d.idle = true, make(chan struct{})
		j.bg.Add(1)
		go func() {
			defer j.bg.Done()
			j.maintain()
		}()
	}
}

// maintain is the index job: it writes full memory tables to runs and
// merges runs (see pickMerge) until there is nothing left to do or the
// journal closes. A table it fails to write stays in memory, and a merge
// that fails leaves the runs as they were; either is logged and tried
// again when the memory table fills next.
func (j *Journal) maintain() {
	j.idx.Lock()
	defer j.idx.Unlock()
	d := j.done
	for {
		j.mu.Lock()
		if d.mem.len() >= d.tune.at {
			d.frozen = append(d.frozen, d.mem)
			d.mem = newFinished()
		}
		tables := d.frozen
		from, to := 0, 0
		if len(tables) == 0 {
			from, to = d.pickMerge()
		}
		if j.closed || len(tables) == 0 && from == to {
			j.endMaintain()
			j.mu.Unlock()
			return
		}
		merging := slices.Clone(d.runs[from:to])
		j.mu.Unlock()

		var r *finRun
		var err error
		if len(tables) > 0 {
			r, err = d.writeTables(tables)
		} else {
			r, err = d.merge(merging, nil, j.quit)
		}
		j.mu.Lock()
		switch {
		case err != nil:
			j.endMaintain()
		case len(tables) > 0:
			// Only this job adds tables, and compaction, the only other
			// one to change them, waits for j.idx.
			d.frozen = nil
			d.runs = slices.Insert(d.runs, 0, r)
		default:
			d.runs = slices.Replace(d.runs, from, to, r)
		}
		j.mu.Unlock()
		if err != nil {
			if !errors.Is(err, errStopped) {
				j.log.LogAttrs(context.Background(), slog.LevelError, "journal: could not spill the index of finished instances to disk; it keeps them as they are until it tries again",
					slog.String("dir", j.dir), slog.Any("error", err))
			}
			return
		}
		for _, r := range merging {
			r.close() // read only: nothing to lose
		}
	}
}

// endMaintain records that the index job has ended. It expects j.mu held.
func (j *Journal) endMaintain() {
	d := j.done
	d.busy = false
	if d.idle != nil {
		close(d.idle)
		d.idle = nil
	}
}
