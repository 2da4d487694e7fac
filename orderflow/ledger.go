package orderflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"strconv"
	"sync"
)

// books is the bookkeeping the bundled services share: the lock over their
// state, how a change applies to it, and the file their changes go to
// (none for a service in memory). A service changes its state only
// through commit, which records a change here and then applies it, so
// that its file and its memory never disagree.
type books[C any] struct {
	mu     sync.Mutex
	apply  func(C) error
	ledger *ledger
}

// open replays the file at path through b.apply and keeps it for the
// changes to come.
func (b *books[C]) open(path string) error {
	l, err := openLedger(path, b.apply)
	if err != nil {
		return err
	}
	b.ledger = l
	return nil
}

// commit writes c to the file, if there is one, and then applies it. It
// expects b.mu held.
func (b *books[C]) commit(c C) error {
	if b.ledger != nil {
		if err := b.ledger.append(c); err != nil {
			return err
		}
	}
	return b.apply(c)
}

// Close closes the service's file, if it has one. The service must not be
// used afterwards.
func (b *books[C]) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ledger.close()
}

// ledger keeps a bundled service's state changes in a file, so that a
// service opened on the same file after a crash or a restart remembers
// every charge, reservation and shipment it acknowledged, and keeps
// deduplicating by key. Each change is one line, the CRC-32C of its JSON in
// hex and the JSON, written and fsynced before the change is applied; a
// torn last line, left by a crash in the middle of a write, was never
// acknowledged and is cut off on open, and damage anywhere else fails the
// open. A nil *ledger keeps nothing.
type ledger struct {
	f    *os.File
	path string
	err  error // a failed write leaves the file unusable until reopened
}

// openLedger replays the changes in path through apply and opens the file
// for appending, creating it if needed.
func openLedger[R any](path string, apply func(R) error) (*ledger, error) {
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("orderflow: %w", err)
	}
	off := 0
	for off < len(data) {
		line := data[off:]
		nl := bytes.IndexByte(line, '\n')
		if nl < 0 {
			break // torn: the write of this line never completed
		}
		r, err := decodeLine[R](line[:nl])
		if err != nil && off+nl+1 == len(data) {
			break // torn in a way that still ends with a newline
		}
		if err == nil {
			err = apply(r)
		}
		if err != nil {
			return nil, fmt.Errorf("orderflow: %s: bad record at offset %d: %w", path, off, err)
		}
		off += nl + 1
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("orderflow: %w", err)
	}
	l := &ledger{f: f, path: path}
	if off < len(data) {
		if err := f.Truncate(int64(off)); err != nil {
			f.Close()
			return nil, fmt.Errorf("orderflow: cut torn tail of %s: %w", path, err)
		}
	}
	if _, err := f.Seek(int64(off), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("orderflow: %w", err)
	}
	return l, nil
}

// append writes r as one line and fsyncs it.
func (l *ledger) append(r any) error {
	if l == nil {
		return nil
	}
	if l.err != nil {
		return l.err
	}
	js, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("orderflow: encode %s record: %w", l.path, err)
	}
	b := fmt.Appendf(nil, "%08x ", crc32.Checksum(js, castagnoli))
	b = append(append(b, js...), '\n')
	if _, err := l.f.Write(b); err != nil {
		l.err = fmt.Errorf("orderflow: write %s: %w", l.path, err)
		return l.err
	}
	if err := l.f.Sync(); err != nil {
		l.err = fmt.Errorf("orderflow: fsync %s: %w", l.path, err)
		return l.err
	}
	return nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// decodeLine checks a line's checksum and decodes its JSON.
func decodeLine[R any](line []byte) (R, error) {
	var r R
	sum, js, ok := bytes.Cut(line, []byte{' '})
	if !ok || len(sum) != 8 {
		return r, errors.New("no checksum")
	}
	want, err := strconv.ParseUint(string(sum), 16, 32)
	if err != nil || uint32(want) != crc32.Checksum(js, castagnoli) {
		return r, errors.New("checksum mismatch")
	}
	return r, json.Unmarshal(js, &r)
}

func (l *ledger) close() error {
	if l == nil {
		return nil
	}
	return l.f.Close()
}
