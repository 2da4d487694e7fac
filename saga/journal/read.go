package journal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/sagaflow/sagaflow/saga"
)

// Load implements saga.Store. It reads the instance's written records back
// from their segments and its queued ones from the batches that hold them,
// and checks every record: one that fails its checksum, or does not
// continue the log, is reported as a *CorruptionError. If it cannot read
// the index of finished instances, it says so rather than "not found".
func (j *Journal) Load(_ context.Context, sagaID string) ([]saga.Event, error) {
	// Compaction moves records, but not while a Load holds this.
	j.files.RLock()
	defer j.files.RUnlock()

	var where [16]loc
	locs := where[:0]
	var queued []byte
	var last uint64 // of a log in flight; 0 for a finished one
	j.mu.Lock()
	if err := j.usable(); err != nil {
		j.mu.Unlock()
		return nil, err
	}
	if e, ok := j.live[sagaID]; ok {
		written := len(e.locs) - e.pending
		locs = append(locs, e.locs[:written]...)
		for _, l := range e.locs[written:] {
			queued = j.appendQueued(queued, l)
		}
		last = e.last
	} else if packed, _, ok, err := j.done.find(sagaID); ok {
		locs = unpackLocs(locs, packed)
	} else {
		j.mu.Unlock()
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %q", saga.ErrNotFound, sagaID)
	}
	j.mu.Unlock()

	lr := logReader{dir: j.dir, id: sagaID}
	if last > 0 {
		lr.events = make([]saga.Event, 0, last)
	}
	defer lr.close()
	for _, l := range locs {
		if err := lr.readAt(l); err != nil {
			return nil, err
		}
	}
	for len(queued) > 0 {
		payload, size, ok := readFrame(queued)
		if !ok {
			return nil, fmt.Errorf("journal: a queued record of %q is malformed", sagaID)
		}
		if err := lr.add(payload); err != nil {
			return nil, fmt.Errorf("journal: a queued record of %q: %w", sagaID, err)
		}
		queued = queued[size:]
	}
	switch n := len(lr.events); {
	case last > 0 && uint64(n) != last:
		return nil, fmt.Errorf("journal: read back %d events of %q, want %d", n, sagaID, last)
	case last == 0 && (n == 0 || !lr.events[n-1].Ends()):
		return nil, fmt.Errorf("journal: the finished log of %q does not end", sagaID)
	}
	return lr.events, nil
}

// appendQueued appends the frame of the queued record at l to dst. It
// expects j.mu held.
func (j *Journal) appendQueued(dst []byte, l loc) []byte {
	b := j.queuedBatch(l.serial())
	if b == nil {
		return dst // Load reports the log as short
	}
	off := b.recs[l.index()].off
	size := frameHeader + int(binary.LittleEndian.Uint32(b.buf[off:]))
	return append(dst, b.buf[off:off+size]...)
}

// queuedBatch returns the batch not yet written whose serial is s, or
// nil. It expects j.mu held.
func (j *Journal) queuedBatch(s uint32) *batch {
	if j.cur != nil && j.cur.serial&serialMask == s {
		return j.cur
	}
	for _, bs := range [][]*batch{j.full, j.inflight} {
		for _, b := range bs {
			if b.serial&serialMask == s {
				return b
			}
		}
	}
	return nil
}

// logReader reads the records of one log back from the segments.
type logReader struct {
	dir    string
	id     string
	events []saga.Event
	buf    []byte
	f      *os.File // segment fseg, open for reading
	fseg   int
}

// readAt reads the record at l and adds it to the log.
func (lr *logReader) readAt(l loc) error {
	if lr.f == nil || lr.fseg != l.seg() {
		lr.close()
		f, err := os.Open(filepath.Join(lr.dir, segmentName(l.seg())))
		if err != nil {
			return fmt.Errorf("journal: read back %q: %w", lr.id, err)
		}
		lr.f, lr.fseg = f, l.seg()
	}
	payload, err := lr.frameAt(l.off())
	if err != nil {
		return err
	}
	if err := lr.add(payload); err != nil {
		return &CorruptionError{File: lr.f.Name(), Offset: l.off(), Reason: err.Error()}
	}
	return nil
}

// frameAt reads the frame at off of the open segment and returns its
// payload.
func (lr *logReader) frameAt(off int64) ([]byte, error) {
	const guess = 4096 // most records fit: one read each
	if cap(lr.buf) < guess {
		lr.buf = make([]byte, guess)
	}
	b := lr.buf[:guess]
	n, err := lr.f.ReadAt(b, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("journal: read %s: %w", lr.f.Name(), err)
	}
	corrupt := func(reason string) error {
		return &CorruptionError{File: lr.f.Name(), Offset: off, Reason: reason}
	}
	if n < frameHeader {
		return nil, corrupt("record cut short")
	}
	size := frameHeader + int(binary.LittleEndian.Uint32(b))
	if size > frameHeader+maxRecord {
		return nil, corrupt("checksum mismatch or broken frame")
	}
	if size > n {
		if cap(lr.buf) < size {
			lr.buf = append(make([]byte, 0, size), b[:n]...)
		}
		b = lr.buf[:size]
		m, err := lr.f.ReadAt(b[n:], off+int64(n))
		if m < size-n {
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("journal: read %s: %w", lr.f.Name(), err)
			}
			return nil, corrupt("record cut short")
		}
	}
	payload, _, ok := readFrame(b[:size])
	if !ok {
		return nil, corrupt("checksum mismatch or broken frame")
	}
	return payload, nil
}

// add decodes a record's payload and appends its events, if it continues
// the log.
func (lr *logReader) add(payload []byte) error {
	r, events, err := decodeAppend(lr.events, payload)
	if err != nil {
		return err
	}
	want := kindAppend
	if len(lr.events) == 0 {
		want = kindCreate
	}
	switch {
	case r.sagaID != lr.id:
		return fmt.Errorf("%w: a record of %q in the log of %q", errDecode, r.sagaID, lr.id)
	case r.kind != want || r.expected != uint64(len(lr.events)):
		return fmt.Errorf("%w: a record of kind %d expecting %d events after %d", errDecode, r.kind, r.expected, len(lr.events))
	case len(lr.events) > 0 && r.events[0].Run != lr.events[0].Run:
		return fmt.Errorf("%w: run %q in the log of run %q", errDecode, r.events[0].Run, lr.events[0].Run)
	}
	if err := saga.CheckAppend(lr.id, r.expected, r.events); err != nil {
		return err
	}
	lr.events = events
	return nil
}

func (lr *logReader) close() {
	if lr.f != nil {
		lr.f.Close()
		lr.f = nil
	}
}
