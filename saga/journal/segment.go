package journal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/sagaflow/sagaflow/saga"
)

// A segment file starts with a header: a magic string, flags and the
// header's own checksum. Records follow it back to back. Segments are
// numbered; a base segment (written by compaction) holds everything that
// the segments before it held, and replaces them.
const (
	headerSize = 16
	magic      = "SGJRNL01"
	flagBase   = 1
)

type segment struct {
	n    int
	f    *os.File
	size int64
}

func segmentName(n int) string { return fmt.Sprintf("seg-%08d.log", n) }

func header(flags uint32) []byte {
	h := make([]byte, headerSize)
	copy(h, magic)
	binary.LittleEndian.PutUint32(h[8:], flags)
	binary.LittleEndian.PutUint32(h[12:], crc32.Checksum(h[:12], castagnoli))
	return h
}

// readHeader returns the flags of a segment's header, or ok false if b does
// not start with a valid one.
func readHeader(b []byte) (flags uint32, ok bool) {
	if len(b) < headerSize || string(b[:8]) != magic ||
		crc32.Checksum(b[:12], castagnoli) != binary.LittleEndian.Uint32(b[12:]) {
		return 0, false
	}
	return binary.LittleEndian.Uint32(b[8:]), true
}

// write appends b to the segment.
func (s *segment) write(b []byte) error {
	n, err := s.f.Write(b)
	s.size += int64(n)
	if err != nil {
		return fmt.Errorf("journal: write %s: %w", s.f.Name(), err)
	}
	return nil
}

// createSegment creates segment n with its header, durably: the file and
// the directory entry are fsynced before it is used.
func (j *Journal) createSegment(n int, flags uint32) (*segment, error) {
	if n > maxSegment {
		return nil, fmt.Errorf("journal: segment numbers are spent (%d)", n)
	}
	path := filepath.Join(j.dir, segmentName(n))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	s := &segment{n: n, f: f}
	if err := s.write(header(flags)); err != nil {
		f.Close()
		return nil, err
	}
	if err := j.sync(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: fsync %s: %w", path, err)
	}
	if err := syncDir(j.dir); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// rotate starts the next segment. It runs on the writer goroutine.
func (j *Journal) rotate() error {
	old := j.seg
	if j.dirty {
		if err := j.sync(old.f); err != nil {
			return fmt.Errorf("journal: fsync %s: %w", old.f.Name(), err)
		}
		j.dirty = false
	}
	s, err := j.createSegment(old.n+1, 0)
	if err != nil {
		return err
	}
	j.seg = s
	return old.f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("journal: fsync directory %s: %w", dir, err)
	}
	return nil
}

// segments lists the numbers of the segment files in dir, in order, and
// removes the temporary files an interrupted compaction left, and any run
// of the index of finished instances that a crash left before it was
// unlinked.
func (j *Journal) segments() ([]int, error) {
	names, err := os.ReadDir(j.dir)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	var ns []int
	for _, de := range names {
		name := de.Name()
		if strings.HasSuffix(name, ".tmp") {
			// A run of the index may unlink itself meanwhile.
			if err := os.Remove(filepath.Join(j.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("journal: %w", err)
			}
			continue
		}
		num, ok := strings.CutPrefix(name, "seg-")
		if num, ok2 := strings.CutSuffix(num, ".log"); ok && ok2 {
			if n, err := strconv.Atoi(num); err == nil && n > 0 {
				ns = append(ns, n)
			}
		}
	}
	slices.Sort(ns)
	return ns, nil
}

// recover rebuilds the index from the segments and opens the last one for
// appending, creating the first segment of an empty directory.
func (j *Journal) recover() error {
	ns, err := j.segments()
	if err != nil {
		return err
	}
	if len(ns) == 0 {
		j.base = 1
		j.seg, err = j.createSegment(1, 0)
		return err
	}
	start, err := j.dropSuperseded(ns)
	if err != nil {
		return err
	}
	ns = ns[start:]
	j.base = ns[0]
	for i, n := range ns {
		size, err := j.replay(n, i == len(ns)-1)
		if err != nil {
			return err
		}
		if i == len(ns)-1 {
			path := filepath.Join(j.dir, segmentName(n))
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				return fmt.Errorf("journal: %w", err)
			}
			j.seg = &segment{n: n, f: f, size: size}
		}
	}
	return nil
}

// dropSuperseded finds the newest base segment, removes the segments before
// it (a compaction that crashed before removing them leaves them behind),
// and returns the index of the base in ns.
func (j *Journal) dropSuperseded(ns []int) (int, error) {
	base := 0
	for i := len(ns) - 1; i > 0; i-- {
		b := make([]byte, headerSize)
		f, err := os.Open(filepath.Join(j.dir, segmentName(ns[i])))
		if err != nil {
			return 0, fmt.Errorf("journal: %w", err)
		}
		_, err = f.ReadAt(b, 0)
		f.Close()
		if flags, ok := readHeader(b); err == nil && ok && flags&flagBase != 0 {
			base = i
			break
		}
	}
	for _, n := range ns[:base] {
		if err := os.Remove(filepath.Join(j.dir, segmentName(n))); err != nil {
			return 0, fmt.Errorf("journal: %w", err)
		}
	}
	if base > 0 {
		j.log.LogAttrs(context.Background(), slog.LevelInfo, "journal: removed segments superseded by compaction",
			slog.String("dir", j.dir), slog.Int("segments", base))
		if err := syncDir(j.dir); err != nil {
			return 0, err
		}
	}
	return base, nil
}

// replay applies the records of segment n to the index and returns the
// size of its valid part. In the last segment, a damaged record with no
// valid record after it is a torn tail: the file is truncated there.
func (j *Journal) replay(n int, last bool) (int64, error) {
	path := filepath.Join(j.dir, segmentName(n))
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("journal: %w", err)
	}
	if _, ok := readHeader(data); !ok {
		if !last || len(data) >= headerSize {
			return 0, &CorruptionError{File: path, Offset: 0, Reason: "bad segment header"}
		}
		// A crash while the segment was being created.
		if err := os.WriteFile(path, header(0), 0o644); err != nil {
			return 0, fmt.Errorf("journal: %w", err)
		}
		return headerSize, nil
	}
	off := headerSize
	for off < len(data) {
		payload, size, ok := readFrame(data[off:])
		if !ok {
			if !last || validFrameAfter(data, off+1) {
				return 0, &CorruptionError{File: path, Offset: int64(off), Reason: "checksum mismatch or broken frame"}
			}
			return int64(off), j.truncate(path, off, len(data))
		}
		r, err := decodePayload(payload)
		if err == nil {
			err = saga.CheckAppend(r.sagaID, r.expected, r.events)
		}
		var e *live
		if err == nil {
			e, err = j.check(&r)
		}
		if err != nil {
			if re := (*runError)(nil); errors.As(err, &re) {
				return 0, err
			}
			return 0, &CorruptionError{File: path, Offset: int64(off), Reason: err.Error()}
		}
		j.apply(&r, e, diskLoc(n, int64(off)))
		off += size
	}
	return int64(off), nil
}

// validFrameAfter reports whether a whole, valid frame starts anywhere in
// data at or after from.
func validFrameAfter(data []byte, from int) bool {
	for k := from; k+frameHeader <= len(data); k++ {
		if _, _, ok := readFrame(data[k:]); ok {
			return true
		}
	}
	return false
}

// truncate cuts a torn tail off the last segment, durably.
func (j *Journal) truncate(path string, off, size int) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	err = f.Truncate(int64(off))
	if err == nil {
		err = j.sync(f)
	}
	err = errors.Join(err, f.Close())
	if err != nil {
		return fmt.Errorf("journal: truncate torn tail of %s: %w", path, err)
	}
	j.log.LogAttrs(context.Background(), slog.LevelWarn, "journal: truncated a torn tail",
		slog.String("file", path), slog.Int("offset", off), slog.Int("bytes_dropped", size-off))
	return nil
}
