package journal

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"os"
	"slices"
	"sort"
)

// A run is a file of finished instances that the index of finished
// instances (finIndex) wrote out of memory: immutable, sorted by the hash
// of the saga ID, in blocks of about spillTuning.block bytes that hold
// whole entries. A block is
//
//	crc     uint32, little-endian: CRC-32C of the entries that follow
//	entries back to back, each:
//	  hash   uint64, little-endian: the ID's hash
//	  end    int64, little-endian: when the instance ended, in Unix nanoseconds
//	  id     uvarint length, bytes
//	  locs   uvarint length, the packed locations of its records (packLocs)
//
// In memory a run keeps only a Bloom filter of its hashes, the first hash
// and offset of each block (together about 1.5 bytes per instance at the
// default tuning) and a few tallies of when its instances ended, so that
// a lookup reads one block, or none when the filter rules the ID out. A
// run is derived data: the file is unlinked as soon as it is created
// (Open removes one left by a crash in between), it is never fsynced, and
// recovery rebuilds the index from the segments.

// finRun is a run. Its fields never change once written; any number of
// goroutines may read it until it is closed.
type finRun struct {
	f       *os.File
	readAt  func(f *os.File, b []byte, off int64) (int, error) // (*os.File).ReadAt, or a test's
	n       int                                                // instances
	records int                                                // their records, for compaction's plan
	minEnd  int64                                              // the earliest end among them
	ends    []endTally
	firsts  []uint64 // the first hash of each block
	offs    []int64  // block i spans offs[i] to offs[i+1]
	bloom   bloom
}

// endTally counts the records of the instances of a run that ended within
// one stretch of time, so that compaction can tell how many are past
// retention without reading the run.
type endTally struct {
	last    int64 // the latest end among them
	records int
}

// runError is an error reading or writing a run. Load and Create return
// it rather than answer "not found", which would let a duplicate in; Open
// returns it as it is rather than as damage to a segment.
type runError struct{ err error }

func (e *runError) Error() string {
	return "journal: index of finished instances: " + e.err.Error()
}

func (e *runError) Unwrap() error { return e.err }

var errRunDamaged = errors.New("damaged run block")

// runEntry is one instance in a run. Read from a run, id and packed point
// into a buffer that the next read reuses.
type runEntry struct {
	hash   uint64
	end    int64
	id     []byte
	packed []byte
}

// appendEntry appends e as a run stores it.
func appendEntry(b []byte, e *runEntry) []byte {
	b = binary.LittleEndian.AppendUint64(b, e.hash)
	b = binary.LittleEndian.AppendUint64(b, uint64(e.end))
	b = binary.AppendUvarint(b, uint64(len(e.id)))
	b = append(b, e.id...)
	b = binary.AppendUvarint(b, uint64(len(e.packed)))
	return append(b, e.packed...)
}

// nextEntry decodes the entry that b starts with and returns the rest of
// b, or ok false if b does not start with a whole entry.
func nextEntry(b []byte) (e runEntry, rest []byte, ok bool) {
	if len(b) < 16 {
		return e, nil, false
	}
	e.hash = binary.LittleEndian.Uint64(b)
	e.end = int64(binary.LittleEndian.Uint64(b[8:]))
	b = b[16:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return e, nil, false
	}
	e.id, b = b[k:k+int(n)], b[k+int(n):]
	n, k = binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return e, nil, false
	}
	e.packed, b = b[k:k+int(n)], b[k+int(n):]
	return e, b, true
}

// block reads block i into *buf, growing it as needed, checks it, and
// returns its entries.
func (r *finRun) block(i int, buf *[]byte) ([]byte, error) {
	size := int(r.offs[i+1] - r.offs[i])
	if cap(*buf) < size {
		*buf = make([]byte, size)
	}
	b := (*buf)[:size]
	if err := r.read(b, r.offs[i]); err != nil {
		return nil, err
	}
	return checkBlock(b)
}

// read fills b from offset off of the run's file.
func (r *finRun) read(b []byte, off int64) error {
	n, err := r.readAt(r.f, b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return &runError{fmt.Errorf("read %d bytes at %d: %w", len(b), off, err)}
}

// checkBlock checks a block's checksum and returns its entries.
func checkBlock(b []byte) ([]byte, error) {
	if len(b) < 4 || crc32.Checksum(b[4:], castagnoli) != binary.LittleEndian.Uint32(b) {
		return nil, &runError{errRunDamaged}
	}
	return b[4:], nil
}

// find looks up id, whose hash is h. The packed locations it returns are
// in *buf, valid until *buf is used again.
func (r *finRun) find(h uint64, id string, buf *[]byte) (packed []byte, end int64, ok bool, err error) {
	if !r.bloom.has(h) {
		return nil, 0, false, nil
	}
	// The last block starting at or before h, and the ones before it as
	// long as they may end with h too (hashes can collide).
	i := sort.Search(len(r.firsts), func(i int) bool { return r.firsts[i] > h }) - 1
	for ; i >= 0; i-- {
		b, err := r.block(i, buf)
		if err != nil {
			return nil, 0, false, err
		}
		for len(b) > 0 {
			e, rest, ok := nextEntry(b)
			if !ok {
				return nil, 0, false, &runError{errRunDamaged}
			}
			if e.hash > h {
				break
			}
			if e.hash == h && string(e.id) == id {
				return e.packed, e.end, true, nil
			}
			b = rest
		}
		if r.firsts[i] != h {
			break
		}
	}
	return nil, 0, false, nil
}

// expiredRecords returns how many records of r belong to instances that
// ended when expired says they are past retention, or fewer: it counts
// them by the tallies of their ends, leaving out a tally that expired
// covers in part. It reads nothing.
func (r *finRun) expiredRecords(expired func(end int64) bool) int {
	n := 0
	for _, t := range r.ends {
		if expired(t.last) {
			n += t.records
		}
	}
	return n
}

// close closes the run's file, which frees its disk space.
func (r *finRun) close() error { return r.f.Close() }

// runWriter writes a run. Entries must be added in the order of their
// hashes.
type runWriter struct {
	r       *finRun
	w       *bufio.Writer
	size    int    // of a block
	block   []byte // the block being filled, its checksum's room first
	off     int64  // where it goes
	last    uint64 // the hash of the entry added last
	width   int64  // of the stretches of time that ends are tallied by
	tallies map[int64]endTally
}

// maxTallies bounds the tallies of a run: when its instances ended over a
// longer time than so many stretches, the stretches double.
const maxTallies = 256

// newRunWriter creates the file of a run of at most capacity instances in
// dir, and unlinks it. The run tallies the ends of its instances by
// stretches of width nanoseconds, or not at all if width is 0 (and then
// its writer sets them).
func newRunWriter(dir string, capacity int, t *spillTuning, width int64) (*runWriter, error) {
	f, err := os.CreateTemp(dir, "finished-*.tmp")
	if err != nil {
		return nil, &runError{err}
	}
	// Open and compaction remove temporary files: if one did first, the
	// file is unlinked all the same.
	if err := os.Remove(f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		f.Close()
		return nil, &runError{err}
	}
	readAt := t.readAt
	if readAt == nil {
		readAt = (*os.File).ReadAt
	}
	var out io.Writer = f
	if t.write != nil {
		out = writeFunc(func(b []byte) (int, error) { return t.write(f, b) })
	}
	w := &runWriter{
		r:     &finRun{f: f, readAt: readAt, minEnd: math.MaxInt64, bloom: newBloom(capacity, t.bloomBits)},
		w:     bufio.NewWriterSize(out, 256<<10),
		size:  t.block,
		block: make([]byte, 4, t.block),
		width: width,
	}
	if width > 0 {
		w.tallies = make(map[int64]endTally)
	}
	return w, nil
}

// writeFunc is an io.Writer that calls itself: a run's file written
// through spillTuning.write.
type writeFunc func(b []byte) (int, error)

func (w writeFunc) Write(b []byte) (int, error) { return w(b) }

// add adds an entry, whose hash must not be below the last one's.
func (w *runWriter) add(e *runEntry) error {
	r := w.r
	if r.n > 0 && e.hash < w.last {
		return &runError{errors.New("entries out of order")}
	}
	size := 16 + 2*binary.MaxVarintLen64 + len(e.id) + len(e.packed)
	if len(w.block) > 4 && len(w.block)+size > w.size {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if len(w.block) == 4 {
		r.firsts = append(r.firsts, e.hash)
		r.offs = append(r.offs, w.off)
	}
	w.block = appendEntry(w.block, e)
	w.last = e.hash
	r.bloom.add(e.hash)
	r.n++
	records := countLocs(e.packed)
	r.records += records
	r.minEnd = min(r.minEnd, e.end)
	if w.tallies == nil {
		return nil
	}
	k := e.end / w.width
	t, seen := w.tallies[k]
	if !seen || e.end > t.last {
		t.last = e.end
	}
	t.records += records
	w.tallies[k] = t
	if len(w.tallies) > maxTallies {
		w.coarsen()
	}
	return nil
}

// coarsen doubles the stretches of time that ends are tallied by.
func (w *runWriter) coarsen() {
	w.width *= 2
	old := w.tallies
	w.tallies = make(map[int64]endTally, len(old)/2+1)
	for k, t := range old {
		m, seen := w.tallies[k/2]
		if !seen || t.last > m.last {
			m.last = t.last
		}
		m.records += t.records
		w.tallies[k/2] = m
	}
}

// flush writes the block being filled.
func (w *runWriter) flush() error {
	binary.LittleEndian.PutUint32(w.block, crc32.Checksum(w.block[4:], castagnoli))
	if _, err := w.w.Write(w.block); err != nil {
		return &runError{err}
	}
	w.off += int64(len(w.block))
	w.block = w.block[:4]
	return nil
}

// finish writes what is buffered and returns the run, or nil if it holds
// no instance (and then closes its file).
func (w *runWriter) finish() (*finRun, error) {
	if len(w.block) > 4 {
		if err := w.flush(); err != nil {
			w.abort()
			return nil, err
		}
	}
	if err := w.w.Flush(); err != nil {
		w.abort()
		return nil, &runError{err}
	}
	r := w.r
	if r.n == 0 {
		w.abort()
		return nil, nil
	}
	r.offs = append(r.offs, w.off)
	r.firsts = slices.Clip(r.firsts)
	r.offs = slices.Clip(r.offs)
	for _, t := range w.tallies {
		r.ends = append(r.ends, t)
	}
	slices.SortFunc(r.ends, func(a, b endTally) int { return cmp.Compare(a.last, b.last) })
	return r, nil
}

// abort closes the file of a run that will not be used.
func (w *runWriter) abort() { w.r.f.Close() }

// runScanner reads the entries of a run in order, a few blocks per read.
type runScanner struct {
	r      *finRun
	next   int      // the next block to read
	buf    []byte   // the blocks read last
	blocks [][]byte // the entries of those not yet scanned
	rest   []byte   // the entries of the block being scanned
}

// eachEntry calls fn for every entry of r, in order, until fn returns
// false, and returns the first error reading r. The entry's slices are
// valid during the call.
func (r *finRun) eachEntry(fn func(e runEntry) bool) error {
	s := runScanner{r: r}
	for {
		e, ok, err := s.scan()
		if err != nil || !ok {
			return err
		}
		if !fn(e) {
			return nil
		}
	}
}

// scanChunk is about how many bytes a scanner reads at a time.
const scanChunk = 256 << 10

// scan returns the next entry, or ok false at the end of the run. The
// entry's slices are valid until the next call.
func (s *runScanner) scan() (e runEntry, ok bool, err error) {
	for len(s.rest) == 0 {
		if len(s.blocks) == 0 {
			if s.next >= len(s.r.firsts) {
				return e, false, nil
			}
			if err := s.fill(); err != nil {
				return e, false, err
			}
		}
		s.rest, s.blocks = s.blocks[0], s.blocks[1:]
	}
	e, s.rest, ok = nextEntry(s.rest)
	if !ok {
		return e, false, &runError{errRunDamaged}
	}
	return e, true, nil
}

// fill reads the next blocks, at least one, and checks them.
func (s *runScanner) fill() error {
	offs := s.r.offs
	from, to := s.next, s.next+1
	for to < len(offs)-1 && offs[to+1]-offs[from] <= scanChunk {
		to++
	}
	size := int(offs[to] - offs[from])
	if cap(s.buf) < size {
		s.buf = make([]byte, size)
	}
	b := s.buf[:size]
	if err := s.r.read(b, offs[from]); err != nil {
		return err
	}
	s.blocks = s.blocks[:0]
	for i := from; i < to; i++ {
		entries, err := checkBlock(b[offs[i]-offs[from] : offs[i+1]-offs[from]])
		if err != nil {
			return err
		}
		s.blocks = append(s.blocks, entries)
	}
	s.next = to
	return nil
}

// bloom is a split block Bloom filter: an entry sets 8 bits in one block
// of 256 bits, one bit in each of its 32-bit words, so that a check reads
// one cache line. At 10 bits per entry about 1.3% of the hashes it was
// not given pass. A nil bloom passes every hash.
type bloom []uint32

var bloomSalts = [8]uint32{0x47b6137b, 0x44974d91, 0x8824ad5b, 0xa2b7289d, 0x705495c7, 0x2df1424b, 0x9efc4947, 0x5c6bfb31}

// newBloom returns a filter for n entries at bitsPerEntry bits each, or
// nil if bitsPerEntry is 0.
func newBloom(n, bitsPerEntry int) bloom {
	if bitsPerEntry <= 0 {
		return nil
	}
	return make(bloom, 8*max(1, (n*bitsPerEntry+255)/256))
}

// words returns the block of h.
func (b bloom) words(h uint64) []uint32 {
	i := (uint64(uint32(h>>32)) * uint64(len(b)/8)) >> 32
	return b[8*i : 8*i+8 : 8*i+8]
}

func (b bloom) add(h uint64) {
	if b == nil {
		return
	}
	w, k := b.words(h), uint32(h)
	for i, salt := range bloomSalts {
		w[i] |= 1 << ((k * salt) >> 27)
	}
}

// has reports whether h may have been added: false means it was not.
func (b bloom) has(h uint64) bool {
	if b == nil {
		return true
	}
	w, k := b.words(h), uint32(h)
	for i, salt := range bloomSalts {
		if w[i]&(1<<((k*salt)>>27)) == 0 {
			return false
		}
	}
	return true
}
