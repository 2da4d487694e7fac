package journal_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga/journal"
)

// Recovery from damage: a torn tail (a record the crash cut short or
// garbled, with nothing valid after it) is truncated and logged; damage
// anywhere else stops Open with a *CorruptionError and leaves the files as
// they are.

// tornRecords is how many records writeJournal writes.
const tornRecords = 30

// writeJournal writes tornRecords records to a journal in a new directory,
// over three openings of it, and closes it. It returns the directory, what
// was written, and the offsets of the records in its only segment followed
// by the segment's size.
func writeJournal(t *testing.T) (dir string, h *history, offs []int) {
	t.Helper()
	dir = t.TempDir()
	h = new(history)
	ids := []string{"a", "b", "c", "d", "e"}
	ended := map[string]bool{}
	j := open(t, dir, journal.Options{})
	for i := 0; len(h.recs) < tornRecords; i++ {
		if i > 0 && i%10 == 0 {
			j = reopen(t, j, dir, journal.Options{})
		}
		id := ids[i%len(ids)]
		at := t0.Add(time.Duration(i) * time.Second)
		switch last := h.last(id); {
		case ended[id]:
		case last == 0:
			h.create(t, j, id, at, 60)
		case last >= 6 && (id == "a" || id == "c"):
			h.end(t, j, id, at)
			ended[id] = true
		default:
			h.steps(t, j, id, 1+i%3, at, 40)
		}
	}
	require.NoError(t, j.Close())
	names := segmentFiles(t, dir)
	require.Equal(t, []string{"seg-00000001.log"}, names, "one segment")
	offs = frames(t, filepath.Join(dir, names[0]))
	require.Len(t, offs, tornRecords+1, "records in the segment")
	return dir, h, offs
}

// complete returns how many records end at or before off.
func complete(offs []int, off int) int {
	n := 0
	for n+1 < len(offs) && offs[n+1] <= off {
		n++
	}
	return n
}

// checkAppendsSurvive appends to a journal recovered to the first n records
// of h, reopens it and checks that the new records are there too.
func checkAppendsSurvive(t *testing.T, j *journal.Journal, dir string, h *history, n int) {
	t.Helper()
	after := &history{recs: slices.Clone(h.recs[:n])}
	logs, order := after.logs(n)
	at := t0.Add(time.Hour)
	for _, id := range order {
		if log := logs[id]; !log[len(log)-1].Ends() {
			after.steps(t, j, id, 2, at, 50)
			break
		}
	}
	after.create(t, j, "new", at, 70)
	after.steps(t, j, "new", 1, at, 30)

	j = reopen(t, j, dir, journal.Options{})
	want, order := after.logs(len(after.recs))
	assertLogs(t, j, want, order, append(h.ids(), "new"))
}

func TestTornTailTruncatedAtEveryOffset(t *testing.T) {
	t.Parallel()
	src, h, offs := writeJournal(t)
	const seg = "seg-00000001.log"
	// Every cut from the start of the third-to-last record to one byte
	// before the end of the last.
	for off := offs[tornRecords-3]; off < offs[tornRecords]; off++ {
		t.Run(fmt.Sprintf("offset=%d", off), func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "j")
			copyDir(t, src, dir)
			path := filepath.Join(dir, seg)
			require.NoError(t, os.Truncate(path, int64(off)))

			logger, logs := capture()
			j := open(t, dir, journal.Options{Logger: logger})
			n := complete(offs, off)
			assertPrefix(t, j, h, n)
			info, err := os.Stat(path)
			require.NoError(t, err)
			assert.Equal(t, int64(offs[n]), info.Size(), "segment size after recovery")
			if off == offs[n] {
				assert.NotContains(t, logs.String(), "torn tail", "a cut between records leaves nothing to truncate")
			} else {
				assert.Contains(t, logs.String(), "torn tail")
				assert.Contains(t, logs.String(), fmt.Sprintf("bytes_dropped=%d", off-offs[n]))
			}
			checkAppendsSurvive(t, j, dir, h, n)
		})
	}
}

func TestTornTailBitFlipInLastRecord(t *testing.T) {
	t.Parallel()
	src, h, offs := writeJournal(t)
	start, end := offs[tornRecords-1], offs[tornRecords]
	for off := start; off < end; off++ {
		for _, bit := range []uint{0, 7} {
			t.Run(fmt.Sprintf("offset=%d/bit=%d", off, bit), func(t *testing.T) {
				t.Parallel()
				dir := filepath.Join(t.TempDir(), "j")
				copyDir(t, src, dir)
				path := filepath.Join(dir, "seg-00000001.log")
				flipBit(t, path, off, bit)

				logger, logs := capture()
				j := open(t, dir, journal.Options{Logger: logger})
				assertPrefix(t, j, h, tornRecords-1)
				assert.Contains(t, logs.String(), "torn tail")
				info, err := os.Stat(path)
				require.NoError(t, err)
				assert.Equal(t, int64(start), info.Size(), "segment size after recovery")
			})
		}
	}
}

// flipBit flips one bit of the byte at off in the file at path.
func flipBit(t *testing.T, path string, off int, bit uint) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Less(t, off, len(data))
	data[off] ^= 1 << bit
	require.NoError(t, os.WriteFile(path, data, 0o644))
}

// requireCorrupt opens dir and checks that it fails with a
// *CorruptionError about file at offset, leaving every file of dir as it
// was.
func requireCorrupt(t *testing.T, dir, file string, offset int) {
	t.Helper()
	before := readDir(t, dir)
	for range 2 { // the failed Open released the directory
		_, err := journal.Open(dir, journal.Options{Logger: quiet})
		require.Error(t, err)
		assert.ErrorIs(t, err, journal.ErrCorrupt)
		var ce *journal.CorruptionError
		if assert.ErrorAs(t, err, &ce) {
			assert.Equal(t, filepath.Join(dir, file), ce.File)
			assert.Equal(t, int64(offset), ce.Offset)
			assert.NotEmpty(t, ce.Reason)
			assert.Contains(t, err.Error(), file)
		}
		assert.Equal(t, before, readDir(t, dir), "files after a failed Open")
	}
}

// readDir returns the contents of the segment files of dir by name.
func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for _, name := range segmentFiles(t, dir) {
		data, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		files[name] = data
	}
	return files
}

func TestCorruptionBeforeTheTail(t *testing.T) {
	t.Parallel()
	src, _, offs := writeJournal(t)
	const seg = "seg-00000001.log"
	for _, tc := range []struct {
		name   string
		record int // which record to damage
		at     int // byte within it
	}{
		{"first record length", 0, 0},
		{"first record checksum", 0, 5},
		{"first record payload", 0, 8 + 3},
		{"first record last byte", 0, -1},
		{"middle record", tornRecords / 2, 20},
		{"second-to-last record", tornRecords - 2, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "j")
			copyDir(t, src, dir)
			start := offs[tc.record]
			at := start + tc.at
			if tc.at < 0 {
				at = offs[tc.record+1] + tc.at
			}
			flipBit(t, filepath.Join(dir, seg), at, 2)
			requireCorrupt(t, dir, seg, start)
		})
	}

	t.Run("valid frame that does not apply", func(t *testing.T) {
		t.Parallel()
		// A second copy of the first record: its checksum holds, but it
		// creates an instance that exists. That is not a torn write.
		dir := filepath.Join(t.TempDir(), "j")
		copyDir(t, src, dir)
		path := filepath.Join(dir, seg)
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, append(data, data[offs[0]:offs[1]]...), 0o644))
		requireCorrupt(t, dir, seg, len(data))
	})
}

func TestCorruptionInSegmentBeforeTheLast(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	opts := journal.Options{SegmentSize: 1024, CompactAfter: -1}
	j := open(t, src, opts)
	h := new(history)
	for i := range 12 {
		id := fmt.Sprintf("i%02d", i)
		h.create(t, j, id, t0, 120)
		h.steps(t, j, id, 2, t0, 120)
	}
	require.NoError(t, j.Close())
	names := segmentFiles(t, src)
	require.GreaterOrEqual(t, len(names), 3, "segments")
	first := frames(t, filepath.Join(src, names[0]))
	require.GreaterOrEqual(t, len(first), 3, "records in the first segment")
	last := len(first) - 2 // the first segment's last record

	t.Run("bit flip in its last record", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "j")
		copyDir(t, src, dir)
		flipBit(t, filepath.Join(dir, names[0]), first[last]+10, 0)
		requireCorrupt(t, dir, names[0], first[last])
	})
	t.Run("cut inside its last record", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "j")
		copyDir(t, src, dir)
		require.NoError(t, os.Truncate(filepath.Join(dir, names[0]), int64(first[last]+10)))
		requireCorrupt(t, dir, names[0], first[last])
	})
	t.Run("damaged header", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "j")
		copyDir(t, src, dir)
		flipBit(t, filepath.Join(dir, names[1]), 3, 1)
		requireCorrupt(t, dir, names[1], 0)
	})
	t.Run("undamaged", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "j")
		copyDir(t, src, dir)
		j := open(t, dir, opts)
		assertPrefix(t, j, h, len(h.recs))
	})
}
