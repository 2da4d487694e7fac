package orderflow

import (
	"hash/maphash"
	"math"
	"time"

	"github.com/sagaflow/sagaflow/clock"
)

// memo is what a bundled service remembers of its operations: a record of
// type R for each idempotency key, forgotten oldest first once it is older
// than the service's KeepFor or more than KeepLast records came after it,
// so that the service's memory follows the orders in flight rather than
// every order ever placed.
//
// A busy service remembers hundreds of thousands of operations, so a memo
// keeps no Go pointer per record and the garbage collector has nothing in
// it to scan: records sit in chunks of chunkRecords, in the order they were
// made, with the text they refer to (their keys, and what R keeps as
// spans) copied into the chunk's bytes; R must hold no pointers. The index
// finds a key's record by a hash of the key. It is not safe for concurrent
// use: the service's lock guards it.
type memo[R any] struct {
	keep    time.Duration // 0: no limit in time
	last    uint64        // most records remembered; 0: no limit
	clock   clock.Clock
	epoch   time.Time // record times are nanoseconds since then
	started bool      // epoch is set
	seed    maphash.Seed
	bits    uint32 // of the hash that the index uses: all, but in tests of clashes
	index   memoIndex

	chunks []*memoChunk[R] // oldest first; chunks[0] holds record base
	base   uint64          // number of the first record of chunks[0]
	head   uint64          // number of the oldest record remembered
	next   uint64          // number of the next record
}

// memoChunk is chunkRecords records and their text, each in an allocation
// without pointers, which the collector neither scans nor counts as heap to
// scan when it paces itself. (Records that followed their text's slice
// header in one allocation counted whole: loadgen's services made 11 of
// the 16 MB of heap that the collector counted as scannable.)
type memoChunk[R any] struct {
	text []byte
	recs *[chunkRecords]memoRecord[R]
}

const chunkRecords = 1024

type memoRecord[R any] struct {
	at   int64 // when it was made, in nanoseconds since the epoch
	key  span
	hash uint32 // the key's, as the index has it: forget need not hash it again
	val  R
}

// span is text of a record: where it is in its chunk's bytes.
type span struct{ off, n uint32 }

// newMemo returns a memo that remembers records for keep and at most the
// last of them; zero or less means no limit.
func newMemo[R any](keep time.Duration, last int, clk clock.Clock) memo[R] {
	return memo[R]{keep: keep, last: uint64(max(last, 0)), clock: clk, seed: maphash.MakeSeed(), bits: ^uint32(0)}
}

func (m *memo[R]) record(n uint64) *memoRecord[R] {
	i := n - m.base
	return &m.chunks[i/chunkRecords].recs[i%chunkRecords]
}

func (m *memo[R]) chunk(n uint64) *memoChunk[R] {
	return m.chunks[(n-m.base)/chunkRecords]
}

// find returns the number of the record of key, and false if there is
// none.
func (m *memo[R]) find(key string) (uint64, bool) {
	if len(m.index.slots) == 0 {
		return 0, false
	}
	h := m.hash(maphash.String(m.seed, key))
	for i := h & m.index.mask; ; i = (i + 1) & m.index.mask {
		sl := m.index.slots[i]
		if sl.hash == 0 {
			return 0, false
		}
		if sl.hash == h {
			if n := m.number(sl.n); m.is(n, m.record(n).key, key) {
				return n, true
			}
		}
	}
}

// number returns the record number whose low 32 bits are n32: records
// remembered are fewer than 2^32, so it is the one at or after head.
func (m *memo[R]) number(n32 uint32) uint64 {
	return m.head + uint64(n32-uint32(m.head))
}

// get returns the record of key, or nil. The pointer is valid until the
// next add.
func (m *memo[R]) get(key string) *R {
	if n, ok := m.find(key); ok {
		return &m.record(n).val
	}
	return nil
}

// add makes a record for key, which must have none, forgets the records
// beyond the limits, and returns the new record's number and its value to
// fill in (valid until the next add).
func (m *memo[R]) add(key string) (uint64, *R) {
	var at int64
	before := int64(math.MinInt64) // forget nothing by age
	if m.keep > 0 {
		now := m.clock.Now()
		if !m.started {
			m.epoch, m.started = now, true
		}
		at = int64(now.Sub(m.epoch))
		before = at - int64(m.keep)
	}
	m.forget(before)
	n := m.next
	if n-m.base == uint64(len(m.chunks))*chunkRecords {
		size := 32 * chunkRecords // room for the text of a chunk like the last
		if k := len(m.chunks); k > 0 {
			size = max(size, len(m.chunks[k-1].text))
		}
		m.chunks = append(m.chunks, &memoChunk[R]{text: make([]byte, 0, size), recs: new([chunkRecords]memoRecord[R])})
	}
	m.next++
	r := m.record(n)
	*r = memoRecord[R]{at: at, key: m.put(n, key), hash: m.hash(maphash.String(m.seed, key))}
	m.index.insert(r.hash, uint32(n))
	return n, &r.val
}

// forget drops, oldest first, the records made before the time before and
// those beyond the last m.last but for room for one more, and the chunks
// they leave empty.
func (m *memo[R]) forget(before int64) {
	for m.head < m.next {
		r := m.record(m.head)
		if r.at >= before && (m.last == 0 || m.next-m.head < m.last) {
			break
		}
		m.index.remove(r.hash, uint32(m.head))
		m.head++
		if m.head-m.base == chunkRecords {
			m.chunks[0] = nil
			m.chunks = append(m.chunks[:0], m.chunks[1:]...)
			m.base += chunkRecords
		}
	}
}

// put copies s into the bytes of record n's chunk and returns where it is.
func (m *memo[R]) put(n uint64, s string) span {
	c := m.chunk(n)
	sp := span{off: uint32(len(c.text)), n: uint32(len(s))}
	c.text = append(c.text, s...)
	return sp
}

// putBytes is put for a byte slice.
func (m *memo[R]) putBytes(n uint64, b []byte) span {
	c := m.chunk(n)
	sp := span{off: uint32(len(c.text)), n: uint32(len(b))}
	c.text = append(c.text, b...)
	return sp
}

// bytes returns the text of record n at sp, without copying it: it must
// not be kept or changed.
func (m *memo[R]) bytes(n uint64, sp span) []byte {
	return m.chunk(n).text[sp.off : sp.off+sp.n]
}

// str returns the text of record n at sp as a new string.
func (m *memo[R]) str(n uint64, sp span) string {
	return string(m.bytes(n, sp))
}

// is reports whether the text of record n at sp is s, without allocating.
func (m *memo[R]) is(n uint64, sp span, s string) bool {
	return string(m.bytes(n, sp)) == s
}

// each calls fn for every record remembered, oldest first.
func (m *memo[R]) each(fn func(n uint64, key string, r *R)) {
	for n := m.head; n < m.next; n++ {
		r := m.record(n)
		fn(n, m.str(n, r.key), &r.val)
	}
}

// len returns how many records m remembers.
func (m *memo[R]) len() int { return int(m.next - m.head) }

// memoIndex is an open-addressing hash table with linear probing from a
// hash of each key to the low 32 bits of its record's number. Removal
// shifts the entries that follow back into the hole, so that the table
// never fills with tombstones as records come and go: a lookup for a key
// that is not there stops at the first empty slot. Half the slots or more
// are empty.
type memoIndex struct {
	slots []memoSlot // a power of two of them
	mask  uint32
	n     int
}

type memoSlot struct {
	hash uint32 // 0: empty
	n    uint32
}

// hash returns the part of a key's hash h that the index keeps: never 0,
// which marks an empty slot.
func (m *memo[R]) hash(h uint64) uint32 {
	if h := uint32(h) & m.bits; h != 0 {
		return h
	}
	return 1
}

func (x *memoIndex) insert(h, n uint32) {
	if 2*(x.n+1) > len(x.slots) {
		x.grow()
	}
	i := h & x.mask
	for x.slots[i].hash != 0 {
		i = (i + 1) & x.mask
	}
	x.slots[i] = memoSlot{hash: h, n: n}
	x.n++
}

func (x *memoIndex) grow() {
	old := x.slots
	x.slots = make([]memoSlot, max(1024, 2*len(old)))
	x.mask = uint32(len(x.slots) - 1)
	for _, sl := range old {
		if sl.hash != 0 {
			i := sl.hash & x.mask
			for x.slots[i].hash != 0 {
				i = (i + 1) & x.mask
			}
			x.slots[i] = sl
		}
	}
}

// remove removes the entry of record n, whose key hashes to h.
func (x *memoIndex) remove(h, n uint32) {
	i := h & x.mask
	for x.slots[i] != (memoSlot{hash: h, n: n}) {
		if x.slots[i].hash == 0 {
			return // not there
		}
		i = (i + 1) & x.mask
	}
	x.n--
	// Shift back each entry after the hole that its home slot allows,
	// until an empty slot ends the run.
	for j := i; ; {
		j = (j + 1) & x.mask
		sl := x.slots[j]
		if sl.hash == 0 {
			break
		}
		home := sl.hash & x.mask
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			x.slots[i] = sl
			i = j
		}
	}
	x.slots[i] = memoSlot{}
}
