package journal

import (
	"encoding/binary"
)

// finished is a table of finished instances in memory: for each, where its
// records are and when it ended. The index of finished instances (see
// finIndex) adds to one such table, and writes it to a run file once it
// holds spillTuning.at instances. It keeps no Go pointer per instance:
// saga IDs and packed locations are copied into large byte chunks, and
// entries and hash slots are flat slices of integers. The garbage
// collector has nothing in it to scan, and an instance costs about 70
// bytes. Entries are never removed. The caller hashes the IDs (with
// finIndex.hash) and passes the hash along. It is not safe for concurrent
// use (the journal guards it with j.mu), but once no more is added to it,
// any number of goroutines may read it.
type finished struct {
	parts  [finParts]finPart // by the top byte of the ID's hash, to grow in small steps
	chunks [][]byte          // saga IDs and packed locations (see add)
	n      int
}

const (
	finParts  = 256
	chunkSize = 64 << 10
)

// finPart is an open-addressing hash table with linear probing.
type finPart struct {
	slots []uint32 // 1 + the index in ents, or 0 for an empty slot
	ents  []finEntry
}

type finEntry struct {
	hash uint64 // the ID's hash
	at   uint64 // its record in the chunks: chunk<<32 | offset
	end  int64  // the time of its last event, in Unix nanoseconds
}

func newFinished() *finished { return &finished{} }

// len returns how many instances f holds.
func (f *finished) len() int { return f.n }

// find returns the entry of id, whose hash is h, or nil.
func (f *finished) find(h uint64, id string) *finEntry {
	p := &f.parts[h>>56]
	if len(p.slots) == 0 {
		return nil
	}
	mask := uint32(len(p.slots) - 1)
	for i := uint32(h) & mask; ; i = (i + 1) & mask {
		s := p.slots[i]
		if s == 0 {
			return nil
		}
		e := &p.ents[s-1]
		if e.hash == h {
			if key, _ := f.record(e.at); string(key) == id {
				return e
			}
		}
	}
}

// get returns the packed locations of the records of id, whose hash is h
// (see packLocs; valid as long as f, as chunks are never rewritten), and
// when it ended.
func (f *finished) get(h uint64, id string) (locs []byte, end int64, ok bool) {
	e := f.find(h, id)
	if e == nil {
		return nil, 0, false
	}
	_, locs = f.record(e.at)
	return locs, e.end, true
}

// add adds id, whose hash is h, which f must not hold.
func (f *finished) add(h uint64, id string, locs []loc, end int64) {
	var tmp [64]byte
	packed := packLocs(tmp[:0], locs)
	p := &f.parts[h>>56]
	if 4*(len(p.ents)+1) > 3*len(p.slots) {
		p.grow()
	}
	p.ents = append(p.ents, finEntry{hash: h, at: f.store(id, packed), end: end})
	p.place(h, uint32(len(p.ents)))
	f.n++
}

// place puts slot value s for a hash in the first free slot.
func (p *finPart) place(hash uint64, s uint32) {
	mask := uint32(len(p.slots) - 1)
	i := uint32(hash) & mask
	for p.slots[i] != 0 {
		i = (i + 1) & mask
	}
	p.slots[i] = s
}

// grow doubles the slots (from 8) and places every entry again.
func (p *finPart) grow() {
	p.slots = make([]uint32, max(8, 2*len(p.slots)))
	for k := range p.ents {
		p.place(p.ents[k].hash, uint32(k+1))
	}
}

// store copies an ID and its packed locations into the chunks, each
// preceded by its length as a uvarint, and returns where.
func (f *finished) store(id string, packed []byte) uint64 {
	size := 2*binary.MaxVarintLen32 + len(id) + len(packed)
	k := len(f.chunks) - 1
	if k < 0 || cap(f.chunks[k])-len(f.chunks[k]) < size {
		f.chunks = append(f.chunks, make([]byte, 0, max(chunkSize, size)))
		k++
	}
	c := f.chunks[k]
	at := uint64(k)<<32 | uint64(len(c))
	c = binary.AppendUvarint(c, uint64(len(id)))
	c = append(c, id...)
	c = binary.AppendUvarint(c, uint64(len(packed)))
	f.chunks[k] = append(c, packed...)
	return at
}

// record returns the ID and packed locations stored at at.
func (f *finished) record(at uint64) (id, packed []byte) {
	c := f.chunks[at>>32][uint32(at):]
	n, k := binary.Uvarint(c)
	id, c = c[k:k+int(n)], c[k+int(n):]
	n, k = binary.Uvarint(c)
	return id, c[k : k+int(n)]
}

// each calls fn for every instance of f, in no particular order, with its
// hash, until fn returns false, and reports whether fn always returned
// true. The slices are valid as long as f.
func (f *finished) each(fn func(h uint64, id, packed []byte, end int64) bool) bool {
	for pi := range f.parts {
		for _, e := range f.parts[pi].ents {
			id, packed := f.record(e.at)
			if !fn(e.hash, id, packed, e.end) {
				return false
			}
		}
	}
	return true
}
