package saga

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"time"
)

// finished holds a memory store's finished logs, oldest first, packed one
// after another into chunks of bytes in the order they ended, which is
// the order the retention policy drops them in. A store may keep many more
// finished logs than running ones (a day's, with a retention of a day),
// and a running log is a few objects with pointers for the garbage
// collector to follow at every collection; here a finished log is a
// record in a chunk and an entry in its shard's map, and the collector
// marks its ID and nothing else of its own
// (TestMemoryStoreFinishedLogIsItsID). A collection of a heap holding
// 100,000 finished logs takes a quarter of the time or less that it took
// when they were kept as they ran (BenchmarkMemoryStoreCollectFinished,
// two series: 12.5 -> 2.6 ms, 6.7 -> 1.8 ms). A record keeps each state as
// what changed since the one before, so a finished log takes about half
// the memory it took (loadgen's peak heap: 93 -> 65 MB). The price is a
// copy of each log as it ends: BenchmarkOrder allocates 0.7 KiB more per
// order (4.0 -> 4.7 KiB).
//
// A record is its saga ID, length-prefixed; the time it ended, when the
// store has a retention time; the index of its kind (see finKind); its
// number of events; and its packed bytes (see memLog), prefixed with their
// length in 4 bytes, in which each state is written as what changed since
// the state before it (see appendDeltas). A record is dropped by moving
// past it; a chunk, once every record in it has been dropped.
type finished struct {
	chunks [][]byte // oldest first; the last one is written to
	first  uint32   // the number of chunks[0]: see finRef
	head   int      // where the oldest record held starts in chunks[0]
	n      int      // records held
	size   int      // bytes of the records held
	timed  bool     // records hold when they ended: see add

	kinds    []finKind // by index; a free one is zero
	refs     []int     // by kind: the records held that are of it
	free     []int     // kinds free for reuse
	kindOf   map[finKind]int
	lastKind int // the kind of the last record added
}

// finKind is what the events of a log share besides its ID: every
// finished log of a store refers to one of a few.
type finKind struct {
	definition string
	version    int
	loc        *time.Location
}

// finRef is where a finished log's record is: the number of its chunk,
// counted from the store's first, in the high 32 bits, and its offset in
// the chunk in the low.
type finRef uint64

// A new chunk has room for an eighth of the bytes of the records held,
// within these bounds: a store that keeps few finished logs keeps small
// chunks, and one that keeps many, chunks that the collector marks in a
// moment each. The room left in the newest chunk and the dropped records in
// the oldest then come to at most a quarter of what the store holds, or
// twice maxChunk. A log larger than maxChunk gets a chunk of its own.
const (
	minChunk = 4 << 10
	maxChunk = 64 << 10
)

// add adds a record of l, which ended at, and returns where it is. at is
// how long after the store was made, on the store's clock (its monotonic
// reading, if it has one), so that a clock set back or forward keeps a
// retention time as long as it is.
func (f *finished) add(l *memLog, at time.Duration) finRef {
	kind := f.kind(finKind{l.definition, l.version, l.loc})
	need := 6*binary.MaxVarintLen64 + len(l.id) + len(l.b) + 2*len(l.states) // a state may take two bytes more
	k := len(f.chunks) - 1
	if k < 0 || cap(f.chunks[k])-len(f.chunks[k]) < need {
		size := min(max(f.size/8, minChunk), maxChunk)
		if f.n == 0 { // no record held: the chunks go
			clear(f.chunks)
			f.first += uint32(len(f.chunks))
			f.chunks, f.head = f.chunks[:0], 0
		}
		f.chunks = append(f.chunks, make([]byte, 0, max(size, need)))
		k = len(f.chunks) - 1
	}
	c := f.chunks[k]
	off := len(c)
	c = appendBytes(c, true, l.id)
	if f.timed {
		c = binary.AppendVarint(c, int64(at))
	}
	c = binary.AppendUvarint(c, uint64(kind))
	c = binary.AppendUvarint(c, uint64(l.n))
	size := len(c)
	c = binary.LittleEndian.AppendUint32(c, 0) // the size of the bytes, once written
	c = appendDeltas(c, l.b, l.states)
	binary.LittleEndian.PutUint32(c[size:], uint32(len(c)-size-4))
	if need > maxChunk {
		// A chunk of its own, made with room for every state whole: the
		// record, with its states as changes, may take far less.
		c = bytes.Clone(c)
	}
	f.chunks[k] = c
	f.n++
	f.size += len(c) - off
	return finRef(uint64(f.first+uint32(k))<<32 | uint64(off))
}

// kind returns the index of k among the kinds of the records held,
// adding it if it is new, and counts one more record of it.
func (f *finished) kind(k finKind) int {
	i := f.lastKind
	if i >= len(f.kinds) || f.kinds[i] != k {
		var ok bool
		if i, ok = f.kindOf[k]; !ok {
			if f.kindOf == nil {
				f.kindOf = make(map[finKind]int)
			}
			if n := len(f.free); n > 0 {
				i, f.free = f.free[n-1], f.free[:n-1]
			} else {
				i = len(f.kinds)
				f.kinds, f.refs = append(f.kinds, finKind{}), append(f.refs, 0)
			}
			f.kinds[i] = k
			f.kindOf[k] = i
		}
		f.lastKind = i
	}
	f.refs[i]++
	return i
}

// record is a record read back: the fields of a memLog that a finished
// log keeps, and the record's size.
type record struct {
	id   []byte
	at   time.Duration
	kind int
	n    int
	b    []byte
	size int
}

// read reads the record that p starts with.
func (f *finished) read(p []byte) record {
	var r record
	start := len(p)
	uvarint := func() uint64 {
		v, k := binary.Uvarint(p)
		p = p[k:]
		return v
	}
	bytesOf := func() []byte {
		n := uvarint()
		v := p[:n:n]
		p = p[n:]
		return v
	}
	r.id = bytesOf()
	if f.timed {
		at, k := binary.Varint(p)
		p = p[k:]
		r.at = time.Duration(at)
	}
	r.kind = int(uvarint())
	r.n = int(uvarint())
	n := binary.LittleEndian.Uint32(p)
	r.b = p[4 : 4+n : 4+n]
	p = p[4+n:]
	r.size = start - len(p)
	return r
}

// oldest returns the oldest record held. It requires f.n > 0.
func (f *finished) oldest() record {
	return f.read(f.chunks[0][f.head:])
}

// drop drops r, the oldest record held, and its chunk if no record in it
// is left and another follows: so while a record is held, chunks[0][head:]
// starts with the oldest. A kind that no record held is of any more is
// forgotten, so that a store whose logs come in ever new kinds (times in
// a location made for each) does not keep them all.
func (f *finished) drop(r record) {
	f.head += r.size
	f.n--
	f.size -= r.size
	if f.refs[r.kind]--; f.refs[r.kind] == 0 {
		delete(f.kindOf, f.kinds[r.kind])
		f.kinds[r.kind] = finKind{}
		f.free = append(f.free, r.kind)
	}
	if f.head == len(f.chunks[0]) && len(f.chunks) > 1 {
		f.chunks[0] = nil
		f.chunks = f.chunks[1:]
		f.first++
		f.head = 0
	}
}

// log returns the finished log of saga id at ref, if it is still held. Its
// bytes are a copy, so that events read from it, which share them, keep
// only their own log from the collector and not a whole chunk.
func (f *finished) log(ref finRef, id string) (memLog, bool) {
	k := uint32(ref>>32) - f.first // past the chunks held if its chunk was dropped
	off := int(uint32(ref))
	if k >= uint32(len(f.chunks)) || (k == 0 && off < f.head) {
		return memLog{}, false // dropped since ref was taken
	}
	r := f.read(f.chunks[k][off:])
	if string(r.id) != id {
		return memLog{}, false
	}
	kind := f.kinds[r.kind]
	return memLog{
		id: id, definition: kind.definition, version: kind.version, loc: kind.loc,
		n: r.n, b: bytes.Clone(r.b), deltas: true,
	}, true
}

// appendDeltas appends to dst the packed events b, whose states start at
// the offsets states, each state written as what changed since the state
// before it in the log (nothing before the first): the length of the
// prefix the two share, the length of the suffix they share besides it,
// and the bytes between. A saga's state changes a little at each step (an
// order gets a status and a charge ID), so a finished log keeps little
// more than one state and the changes (loadgen's orders: 0.9 KB a record
// instead of 1.7).
func appendDeltas(dst, b []byte, states []uint32) []byte {
	from := 0 // where the bytes not yet copied start
	var prev []byte
	for _, off := range states {
		dst = append(dst, b[from:off]...)
		n, k := binary.Uvarint(b[off:])
		state := b[int(off)+k : int(off)+k+int(n)]
		from = int(off) + k + int(n)
		pre := commonPrefix(prev, state)
		suf := commonSuffix(prev[pre:], state[pre:])
		dst = binary.AppendUvarint(dst, uint64(pre))
		dst = binary.AppendUvarint(dst, uint64(suf))
		dst = appendBytes(dst, true, state[pre:len(state)-suf])
		prev = state
	}
	return append(dst, b[from:]...)
}

// commonPrefix returns the length of the longest prefix of a and b.
func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for ; i+8 <= n; i += 8 {
		if x := binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:]); x != 0 {
			return i + bits.TrailingZeros64(x)/8
		}
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// commonSuffix returns the length of the longest suffix of a and b.
func commonSuffix(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for ; i+8 <= n; i += 8 {
		if x := binary.LittleEndian.Uint64(a[len(a)-i-8:]) ^ binary.LittleEndian.Uint64(b[len(b)-i-8:]); x != 0 {
			return i + bits.LeadingZeros64(x)/8
		}
	}
	for i < n && a[len(a)-1-i] == b[len(b)-1-i] {
		i++
	}
	return i
}
