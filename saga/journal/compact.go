package journal

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/sagaflow/sagaflow/saga"
)

// Compaction rewrites the instances worth keeping into one base segment
// and removes the segments it replaces, so that the directory holds the
// live instances, the finished ones still within Options.Retention, and
// the segments written since.
//
// It runs in two phases. On the writer goroutine, between two batches, it
// takes a snapshot of the index, writes and fsyncs what was queued, and
// starts a new segment: every event of the snapshot is then in the old
// segments and every later event in the new ones. In the background it
// writes the snapshot to a temporary file, fsyncs it, renames it over the
// newest old segment with the base flag set, fsyncs the directory, and
// removes the older segments. A crash before the rename leaves the old
// segments as they were (Open removes the temporary file); a crash after
// it leaves a base that Open recognises as superseding the rest.

// Compact compacts the journal now and waits until it is done. It returns
// saga.ErrClosed after Close, ErrCompacting if a compaction (possibly an
// automatic one) is already running, and an error if writing the base
// failed, in which case the journal is as it was.
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

// kept is an instance the base keeps: its log as of the snapshot.
type kept struct {
	id     string
	n      uint64
	events []saga.Event
}

// startCompaction is phase one. It runs on the writer goroutine; done, if
// not nil, receives the result.
func (j *Journal) startCompaction(done chan<- error) {
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
	j.compacting = true
	now := j.opts.Clock.Now()
	j.mu.Lock()
	var keep []kept
	var drop []string
	for id, e := range j.index {
		if e.ended && now.Sub(e.events[len(e.events)-1].Time) > j.opts.Retention {
			drop = append(drop, id)
			continue
		}
		keep = append(keep, kept{id: id, n: e.n, events: e.events[:len(e.events):len(e.events)]})
	}
	queued := j.cur // in the snapshot, not yet written
	j.cur = nil
	j.mu.Unlock()
	j.flushBatch(queued)
	j.mu.Lock()
	poison := j.poison
	j.mu.Unlock()
	if poison != nil {
		j.compacting = false
		report(poison)
		return
	}
	old := j.seg.n
	if err := j.rotate(); err != nil {
		j.fail(err)
		j.compacting = false
		report(err)
		return
	}
	j.bg.Add(1)
	go func() {
		defer j.bg.Done()
		err := j.writeBase(old, keep, drop)
		base := 0
		if err == nil {
			base = old
		}
		j.compactDone <- base
		report(err)
	}()
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

// writeBase is phase two: it replaces segments up to and including old
// with a base holding keep, and forgets drop.
func (j *Journal) writeBase(old int, keep []kept, drop []string) error {
	slices.SortFunc(keep, func(a, b kept) int { return compareUint(a.n, b.n) })
	final := filepath.Join(j.dir, segmentName(old))
	tmp := final + ".tmp"
	err := j.writeBaseFile(tmp, keep)
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err == nil {
		err = syncDir(j.dir)
	}
	if err != nil {
		os.Remove(tmp)
		j.log.LogAttrs(context.Background(), slog.LevelError, "journal: compaction failed; segments kept as they were",
			slog.String("dir", j.dir), slog.Any("error", err))
		return fmt.Errorf("journal: compact: %w", err)
	}

	j.mu.Lock()
	for _, id := range drop {
		delete(j.index, id)
	}
	j.mu.Unlock()
	ns, err := j.segments()
	removed := 0
	for _, n := range ns {
		if err != nil || n >= old {
			break
		}
		err = os.Remove(filepath.Join(j.dir, segmentName(n)))
		removed++
	}
	if err == nil {
		err = syncDir(j.dir)
	}
	if err != nil { // the base is in place: Open removes the rest
		j.log.LogAttrs(context.Background(), slog.LevelWarn, "journal: compaction could not remove old segments",
			slog.String("dir", j.dir), slog.Any("error", err))
	}
	j.log.LogAttrs(context.Background(), slog.LevelInfo, "journal: compacted",
		slog.String("dir", j.dir), slog.Int("kept", len(keep)), slog.Int("dropped", len(drop)),
		slog.Int("segments_removed", removed))
	return nil
}

// writeBaseFile writes a base segment holding the records that recreate
// each kept instance (see appendInstance), and fsyncs it.
func (j *Journal) writeBaseFile(path string, keep []kept) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	_, err = w.Write(header(flagBase))
	var buf []byte
	for i := 0; err == nil && i < len(keep); i++ {
		k := &keep[i]
		buf, err = appendInstance(buf[:0], k.id, k.events)
		if err == nil {
			_, err = w.Write(buf)
		}
	}
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = j.sync(f)
	}
	return errors.Join(err, f.Close())
}

// appendInstance appends the frames that recreate a log: one Create, or,
// when the log is too big for one record, a Create and Appends.
func appendInstance(buf []byte, id string, events []saga.Event) ([]byte, error) {
	r := record{kind: kindCreate, sagaID: id}
	for len(events) > 0 {
		n := len(events)
		for {
			r.events = events[:n]
			out, err := appendFrame(buf, &r)
			if err == nil {
				buf = out
				break
			}
			if n == 1 {
				return buf, err
			}
			n /= 2
		}
		events = events[n:]
		r.kind, r.expected = kindAppend, r.expected+uint64(n)
	}
	return buf, nil
}
