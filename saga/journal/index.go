package journal

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/sagaflow/sagaflow/saga"
)

// The index says, for every instance the journal holds, where its records
// are: the logs themselves stay on disk, and Load reads them back. An
// instance in flight keeps what Create and Append check (its last sequence
// number, its run, whether it has ended) and the locations of its records;
// once its last record is written it moves to the index of finished
// instances (see finIndex) as its packed locations and the time it ended,
// which is what Load and compaction need. That index keeps the most
// recently finished ones (up to some 130,000) in memory, at about 70
// bytes each, and spills the others to files, where they cost the heap
// about 1.5 bytes each. Memory thus
// follows the instances in flight.

// loc is where a record is. A written record has its segment's number in
// bits 40 to 62 and its frame's offset in the segment in bits 0 to 39. A
// record still waiting for the writer has pendingBit set, the serial of its
// batch in bits 32 to 62, and its index among the batch's records in bits
// 0 to 31.
type loc uint64

const (
	offBits    = 40
	maxOffset  = 1<<offBits - 1
	maxSegment = 1<<(63-offBits) - 1
	pendingBit = loc(1) << 63
	serialMask = 1<<31 - 1

	// maxSegmentSize bounds Options.SegmentSize so that a segment, which
	// may outgrow it by a batch, stays within maxOffset.
	maxSegmentSize = 1 << 38
)

func diskLoc(seg int, off int64) loc { return loc(uint64(seg)<<offBits | uint64(off)) }

func pendingLoc(serial uint32, i int) loc {
	return pendingBit | loc(serial&serialMask)<<32 | loc(uint32(i))
}

func (l loc) pending() bool { return l&pendingBit != 0 }
func (l loc) seg() int      { return int(l >> offBits) }
func (l loc) off() int64    { return int64(l & maxOffset) }
func (l loc) serial() uint32 {
	return uint32(l>>32) & serialMask
}
func (l loc) index() int { return int(uint32(l)) }

// live is an instance whose log has not ended, or whose last record the
// writer has not written yet.
type live struct {
	id, run, definition string
	n                   uint64 // creation order, for Unfinished
	last                uint64 // last sequence number
	locs                []loc  // its records in order; the last pending of them queued
	pending             int
	ended               bool
	end                 int64 // once ended: the time of its last event, in Unix nanoseconds
}

// packLocs appends the locations of a finished log to dst, each as a
// uvarint of its difference from the one before (locations grow along a
// log, so the differences are small).
func packLocs(dst []byte, locs []loc) []byte {
	prev := loc(0)
	for _, l := range locs {
		dst = binary.AppendUvarint(dst, uint64(l-prev))
		prev = l
	}
	return dst
}

// unpackLocs appends the locations packed in b to dst.
func unpackLocs(dst []loc, b []byte) []loc {
	prev := loc(0)
	var v uint64
	var shift uint
	for _, c := range b {
		v |= uint64(c&0x7f) << shift
		shift += 7
		if c < 0x80 {
			prev += loc(v)
			dst = append(dst, prev)
			v, shift = 0, 0
		}
	}
	return dst
}

// countLocs returns how many locations b packs.
func countLocs(b []byte) int {
	n := 0
	for _, c := range b {
		if c < 0x80 {
			n++
		}
	}
	return n
}

// unixNano returns t in Unix nanoseconds, clamped to what an int64 holds
// (years 1678 to 2262), which is all that retention needs.
func unixNano(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, math.MinInt64)):
		return math.MinInt64
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// check reports whether r may be applied to the index, and returns the
// instance it appends to (nil for a Create). It fails with a *runError if
// it cannot read the index of finished instances. It expects j.mu held.
func (j *Journal) check(r *record) (*live, error) {
	e, ok := j.live[r.sagaID]
	if r.kind == kindCreate {
		if !ok {
			done, err := j.done.has(r.sagaID)
			if err != nil {
				return nil, err
			}
			ok = done
		}
		if ok {
			return nil, fmt.Errorf("%w: %q", saga.ErrDuplicate, r.sagaID)
		}
		return nil, nil
	}
	if !ok {
		done, err := j.done.has(r.sagaID)
		switch {
		case err != nil:
			return nil, err
		case done:
			return nil, fmt.Errorf("%w: %q", saga.ErrFinished, r.sagaID)
		}
		return nil, fmt.Errorf("%w: %q", saga.ErrNotFound, r.sagaID)
	}
	switch {
	case e.ended:
		return nil, fmt.Errorf("%w: %q", saga.ErrFinished, r.sagaID)
	case e.last != r.expected:
		return nil, fmt.Errorf("%w: %q is at %d, not %d", saga.ErrConflict, r.sagaID, e.last, r.expected)
	case r.events[0].Run != e.run:
		return nil, fmt.Errorf("%w: run %q appended to the log of run %q", saga.ErrInvalidEvent, r.events[0].Run, e.run)
	}
	return e, nil
}

// apply adds r, checked by check, which returned e, to the index: the
// record is at l. It returns r's instance. It expects j.mu held.
func (j *Journal) apply(r *record, e *live, l loc) *live {
	if e == nil {
		first := &r.events[0]
		j.created++
		// Room for the records of a few steps, so that the locations
		// grow once or not at all.
		e = &live{id: r.sagaID, run: first.Run, definition: first.Definition, n: j.created, locs: make([]loc, 0, 8)}
		j.live[r.sagaID] = e
	}
	e.locs = append(e.locs, l)
	if l.pending() {
		e.pending++
	}
	last := &r.events[len(r.events)-1]
	e.last = last.Seq
	if last.Ends() {
		e.ended, e.end = true, unixNano(last.Time)
		if e.pending == 0 {
			j.retire(e)
		}
	}
	return e
}

// resolve gives the records of b, written at offset pos of segment seg,
// their places on disk, and retires the instances whose last record was
// among them. It takes j.mu for a few records at a time: a batch may
// hold thousands, and the callers queueing the next batch need the lock
// too. Meanwhile Load finds each record either where it was queued (b is
// still in flight) or on disk.
func (j *Journal) resolve(b *batch, seg int, pos int64) {
	const chunk = 64
	for start := 0; start < len(b.recs); start += chunk {
		j.mu.Lock()
		for _, q := range b.recs[start:min(start+chunk, len(b.recs))] {
			e := q.e
			e.locs[q.i] = diskLoc(seg, pos+int64(q.off))
			e.pending--
			if e.ended && e.pending == 0 {
				j.retire(e)
			}
		}
		j.mu.Unlock()
	}
}

// retire moves an ended instance whose records are all written to the
// index of finished ones, and starts spilling its memory table once full.
// It expects j.mu held, except while Open recovers.
func (j *Journal) retire(e *live) {
	if j.done.add(e.id, e.locs, e.end) {
		j.spill()
	}
	delete(j.live, e.id)
}

// Unfinished implements saga.Store.
func (j *Journal) Unfinished(_ context.Context, definition string) ([]string, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.usable(); err != nil {
		return nil, err
	}
	var found []*live
	for _, e := range j.live {
		if !e.ended && e.definition == definition {
			found = append(found, e)
		}
	}
	slices.SortFunc(found, func(a, b *live) int { return cmp.Compare(a.n, b.n) })
	ids := make([]string, len(found))
	for i, e := range found {
		ids[i] = e.id
	}
	return ids, nil
}
