package saga

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sagaflow/sagaflow/clock"
)

// MemoryConfig configures a [MemoryStore]. The zero value keeps every
// instance forever.
type MemoryConfig struct {
	// Clock times the retention of finished instances. Defaults to
	// clock.Real().
	Clock clock.Clock

	// Retention drops finished instances once they have been finished this
	// long. The check runs whenever an instance finishes, so an expired
	// instance may stay readable until the next one does. Defaults to 0:
	// keep them (subject to MaxFinished).
	Retention time.Duration

	// MaxFinished keeps at most this many finished instances, dropping the
	// oldest first. Defaults to 0: no limit (subject to Retention).
	MaxFinished int
}

// MemoryStore is the default [Store]: logs in process memory, sharded so
// that instances do not contend. It is not durable: everything is lost with
// the process. Finished instances can be dropped by a retention policy so
// that memory stays bounded; a dropped instance is not found any more, and
// its ID may be started again. The store copies the events it is given
// and keeps each log packed, in a form the garbage collector need not
// scan: its events read back with their times in the location of its
// first event and without monotonic clock readings, as from a durable
// store.
type MemoryStore struct {
	// Every call reads these and none writes them (but Close): they are
	// kept off the cache lines that calls write, which would otherwise
	// move between processors with every write.
	cfg    MemoryConfig
	seed   maphash.Seed
	closed atomic.Bool
	_      [64]byte

	shards   [memShards]memShard
	nextID   atomic.Uint64
	perBasis atomic.Int64 // the size of a log per byte of its basis, times 256: see room

	finMu sync.Mutex
	fin   finished  // guarded by finMu
	born  time.Time // when the store was made, for the ages of finished logs
}

const memShards = 64

// memShard holds the logs whose IDs hash to it.
type memShard struct {
	mu   sync.Mutex
	logs map[string]memEntry
	_    [64 - 16]byte // keep shards on separate cache lines
}

// memEntry is a log of a shard: running, or soon after it ends, its log;
// then where its record is among the store's finished logs.
type memEntry struct {
	log *memLog // nil once finished
	fin finRef
}

// memLog is a running log as a memory store keeps it: its run and its
// events packed into one byte slice, in which the garbage collector has
// nothing to scan, and beside it what every event of the log shares.
// Packing each event as it comes leaves the collector nothing to scan in
// running logs, and once a log ends its bytes are copied among the
// store's finished logs (see finished), so that the logs a store keeps
// after they end, which may be many more than those running, cost the
// collector nothing but their IDs.
//
// The bytes start with the run, as a length and bytes. Each event is then
// its type; a byte of flags saying which of step, error, At, State,
// signal, dedup key and payload it has, and whether its time is written
// whole; its attempt; its time; and the fields its flags name, as lengths
// and bytes (At as seconds and nanoseconds). A time is written whole, as
// Unix seconds and nanoseconds, for the first event and any that is not
// within 34 years of the one before it; otherwise as the nanoseconds since
// the one before it, usually two or three bytes. That and flags set
// without a loop make packing a fifth cheaper than writing every time
// whole (BenchmarkMemoryStoreLog under callgrind: 3,440 -> 2,800
// instructions per log for packing). Times read back in loc, the location
// of the first event's time.
type memLog struct {
	shard      *memShard // that holds it, whose mutex guards it
	id         string
	definition string
	version    int
	order      uint64 // creation order, for Unfinished
	n          int    // events in the log
	basis      int    // see MemoryStore.room
	ended      bool
	b          []byte
	loc        *time.Location
	sec, nsec  int64 // the time of the last event, which the next one's follows
	deltas     bool  // states are written as changes: a finished log's record (see appendDeltas)

	// states are where the states in b start, for appendDeltas to find
	// them without reading every event: in stateRoom unless the log has
	// more states than a saga of a few steps.
	states    []uint32
	stateRoom [8]uint32
}

// The flags of a packed event.
const (
	packStep byte = 1 << iota
	packErr
	packAt
	packState
	packSignal
	packDedupKey
	packPayload
	packWholeTime
)

// add packs events onto the log. With share set it points the State of
// each event at the log's copy of it, which never changes: the
// coordinator hands those on to subscribers and hooks, and so may encode
// every state of an instance into one buffer.
func (l *memLog) add(events []Event, share bool) {
	p := l.b
	if l.n == 0 {
		p = appendBytes(p, true, events[0].Run)
		l.loc = events[0].Time.Location()
	}
	for i := range events {
		e := &events[i]
		var flags byte
		if e.Step != "" {
			flags |= packStep
		}
		if e.Error != "" {
			flags |= packErr
		}
		if !e.At.IsZero() {
			flags |= packAt
		}
		if e.State != nil {
			flags |= packState
		}
		if e.Signal != "" {
			flags |= packSignal
		}
		if e.DedupKey != "" {
			flags |= packDedupKey
		}
		if e.Payload != nil {
			flags |= packPayload
		}
		sec, nsec := e.Time.Unix(), int64(e.Time.Nanosecond())
		if l.n == 0 || sec-l.sec >= 1<<30 || sec-l.sec <= -1<<30 {
			flags |= packWholeTime
		}
		p = append(p, byte(e.Type), flags)
		p = binary.AppendVarint(p, int64(e.Attempt))
		if flags&packWholeTime != 0 {
			p = appendTime(p, e.Time)
		} else {
			p = binary.AppendVarint(p, (sec-l.sec)*1e9+nsec-l.nsec)
		}
		l.sec, l.nsec = sec, nsec
		p = appendBytes(p, flags&packStep != 0, e.Step)
		p = appendBytes(p, flags&packErr != 0, e.Error)
		if flags&packAt != 0 {
			p = appendTime(p, e.At)
		}
		if flags&packState != 0 {
			l.states = append(l.states, uint32(len(p)))
		}
		p = appendBytes(p, flags&packState != 0, e.State)
		if share && e.State != nil {
			e.State = p[len(p)-len(e.State) : len(p) : len(p)]
		}
		p = appendBytes(p, flags&packSignal != 0, e.Signal)
		p = appendBytes(p, flags&packDedupKey != 0, e.DedupKey)
		p = appendBytes(p, flags&packPayload != 0, e.Payload)
		l.n++
	}
	l.b = p
}

// run returns the log's run ID, as the bytes that hold it.
func (l *memLog) run() []byte {
	n, k := binary.Uvarint(l.b)
	return l.b[k : k+int(n)]
}

// count counts the size of l, which has ended, into the room of the logs
// to come (see room): a moving average over about 16 logs, in which no
// log counts for more than the largest room. Logs that end at once may
// each miss the others' share: it is only a guess at a size. Past the
// store's first 256 logs it counts one in 16, which spares the writes that
// the others would make to a cache line that every new log reads (the
// store below: 1.0% of loadgen's CPU, then too little for its profile to
// show).
func (s *MemoryStore) count(l *memLog) {
	if l.order > 256 && l.order%16 != 0 {
		return
	}
	per := int64(min(len(l.b), maxRoom)) << 8 / int64(l.basis)
	avg := s.perBasis.Load()
	s.perBasis.Store(avg + (per-avg)/16)
}

// room returns the room a new log whose first events are events gets, and
// its basis: the size of its first state and 64 bytes. A log grows with
// its state, which each step records anew, so the logs that ended lately
// say how large a log grows for each byte of its basis; the room is that
// size and a sixteenth more. Most logs then fit in the room they are made
// with, including those whose states differ in size (an order of two
// items, say, and one of one), and a larger one grows once.
func (s *MemoryStore) room(events []Event) (room, basis int) {
	basis = len(events[0].State) + 64
	n := s.perBasis.Load() * int64(basis) >> 8 // at most 2^18 times basis
	return int(min(n+n/16, maxRoom)), basis
}

// maxRoom is the most room a new log gets.
const maxRoom = 64 << 10

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty memory store.
func NewMemoryStore(cfg MemoryConfig) *MemoryStore {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	s := &MemoryStore{cfg: cfg, seed: maphash.MakeSeed()}
	s.fin.timed = cfg.Retention > 0
	if s.fin.timed {
		s.born = cfg.Clock.Now()
	}
	s.perBasis.Store(4 << 8) // a guess, until logs end
	for i := range s.shards {
		s.shards[i].logs = make(map[string]memEntry)
	}
	return s
}

func (s *MemoryStore) shard(id string) *memShard {
	return &s.shards[maphash.String(s.seed, id)%memShards]
}

// shardOf is shard for an ID as bytes.
func (s *MemoryStore) shardOf(id []byte) *memShard {
	return &s.shards[maphash.Bytes(s.seed, id)%memShards]
}

// Create implements [Store].
func (s *MemoryStore) Create(_ context.Context, events []Event) error {
	_, err := s.create(events, false)
	return err
}

// create is Create, returning a handle to the new log for append. With
// share set, it points the State of each event at the log's copy (see
// memLog.add).
func (s *MemoryStore) create(events []Event, share bool) (*memLog, error) {
	if s.closed.Load() {
		return nil, errStoreClosed
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("%w: no events", ErrInvalidArgument)
	}
	id := events[0].SagaID
	if err := CheckAppend(id, 0, events); err != nil {
		return nil, err
	}
	sh := s.shard(id)
	room, basis := s.room(events)
	l := &memLog{
		shard:      sh,
		id:         id,
		definition: events[0].Definition,
		version:    events[0].Version,
		basis:      basis,
		b:          make([]byte, 0, room),
	}
	l.states = l.stateRoom[:0]
	l.add(events, share)
	ended := events[len(events)-1].Ends()
	l.ended = ended
	sh.mu.Lock()
	if _, ok := sh.logs[id]; ok {
		sh.mu.Unlock()
		return nil, fmt.Errorf("%w: %q", ErrDuplicate, id)
	}
	l.order = s.nextID.Add(1)
	sh.logs[id] = memEntry{log: l}
	sh.mu.Unlock()
	if ended {
		s.count(l)
		s.finish(l)
	}
	return l, nil
}

// Append implements [Store].
func (s *MemoryStore) Append(_ context.Context, sagaID string, expected uint64, events []Event) error {
	var l *memLog
	return s.append(&l, sagaID, expected, events, false)
}

// append is Append to the log that *l is a handle to, as create or an
// earlier append returned it, which spares looking it up by saga ID; if
// *l is nil, it looks the log up and leaves its handle in *l. The
// coordinator keeps an instance's handle: looking a log up at each step,
// often a cache miss in a map of every log the store holds, was 1.5% of
// the CPU of loadgen's orders (map lookups: 4.8 -> 3.3% of the profile).
// With share set, it points the State of each event at the log's copy
// (see memLog.add).
func (s *MemoryStore) append(l **memLog, sagaID string, expected uint64, events []Event, share bool) error {
	if s.closed.Load() {
		return errStoreClosed
	}
	if err := CheckAppend(sagaID, expected, events); err != nil {
		return err
	}
	log := *l
	var sh *memShard
	if log != nil {
		sh = log.shard
	} else {
		sh = s.shard(sagaID)
	}
	sh.mu.Lock()
	if log == nil {
		e, ok := sh.logs[sagaID]
		if log = e.log; log == nil {
			sh.mu.Unlock()
			if ok {
				return fmt.Errorf("%w: %q", ErrFinished, sagaID)
			}
			return fmt.Errorf("%w: %q", ErrNotFound, sagaID)
		}
		*l = log
	}
	switch {
	case log.ended:
		sh.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrFinished, sagaID)
	case uint64(log.n) != expected:
		n := log.n
		sh.mu.Unlock()
		return fmt.Errorf("%w: %q has %d events, expected %d", ErrConflict, sagaID, n, expected)
	case events[0].Run != string(log.run()):
		run := string(log.run())
		sh.mu.Unlock()
		return fmt.Errorf("%w: run %q appended to the log of run %q", ErrInvalidEvent, events[0].Run, run)
	}
	log.add(events, share)
	ended := events[len(events)-1].Ends()
	if ended {
		log.ended = true
		s.count(log)
	}
	sh.mu.Unlock()
	if ended {
		s.finish(log)
	}
	return nil
}

// finish moves l, which has ended, among the store's finished logs, and
// drops the finished logs that the retention policy no longer keeps.
func (s *MemoryStore) finish(l *memLog) {
	var age time.Duration    // of the store
	if s.cfg.Retention > 0 { // only retention needs the time
		age = s.cfg.Clock.Now().Sub(s.born)
	}
	s.finMu.Lock()
	defer s.finMu.Unlock()
	ref := s.fin.add(l, age)
	sh := l.shard
	sh.mu.Lock()
	sh.logs[l.id] = memEntry{fin: ref}
	sh.mu.Unlock()

	if s.cfg.Retention <= 0 && s.cfg.MaxFinished <= 0 {
		return
	}
	f := &s.fin
	for f.n > 0 {
		r := f.oldest()
		overCount := s.cfg.MaxFinished > 0 && f.n > s.cfg.MaxFinished
		tooOld := s.cfg.Retention > 0 && age-r.at >= s.cfg.Retention
		if !overCount && !tooOld {
			break
		}
		sh := s.shardOf(r.id)
		sh.mu.Lock()
		delete(sh.logs, string(r.id))
		sh.mu.Unlock()
		f.drop(r)
	}
}

// Load implements [Store].
func (s *MemoryStore) Load(_ context.Context, sagaID string) ([]Event, error) {
	if s.closed.Load() {
		return nil, errStoreClosed
	}
	sh := s.shard(sagaID)
	sh.mu.Lock()
	e, ok := sh.logs[sagaID]
	if e.log != nil {
		events := e.log.load()
		sh.mu.Unlock()
		return events, nil
	}
	sh.mu.Unlock()
	if ok {
		s.finMu.Lock()
		l, held := s.fin.log(e.fin, sagaID)
		s.finMu.Unlock()
		if held {
			return l.load(), nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrNotFound, sagaID)
}

// Unfinished implements [Store].
func (s *MemoryStore) Unfinished(_ context.Context, definition string) ([]string, error) {
	if s.closed.Load() {
		return nil, errStoreClosed
	}
	type entry struct {
		id    string
		order uint64
	}
	var found []entry
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for id, e := range sh.logs {
			if l := e.log; l != nil && !l.ended && l.definition == definition {
				found = append(found, entry{id, l.order})
			}
		}
		sh.mu.Unlock()
	}
	slices.SortFunc(found, func(a, b entry) int { return cmp.Compare(a.order, b.order) })
	ids := make([]string, len(found))
	for i, e := range found {
		ids[i] = e.id
	}
	return ids, nil
}

// Len returns the number of instances the store holds.
func (s *MemoryStore) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.logs)
		sh.mu.Unlock()
	}
	return n
}

// Ping implements [Store]; it fails only after Close.
func (s *MemoryStore) Ping(context.Context) error {
	if s.closed.Load() {
		return errStoreClosed
	}
	return nil
}

// Durable implements [Store]: a memory store is not durable.
func (s *MemoryStore) Durable() bool { return false }

// Close implements [Store]: every later call fails with ErrClosed.
func (s *MemoryStore) Close() error {
	s.closed.Store(true)
	return nil
}

var errStoreClosed = ErrClosed

func appendTime(p []byte, t time.Time) []byte {
	p = binary.AppendVarint(p, t.Unix())
	return binary.AppendUvarint(p, uint64(t.Nanosecond()))
}

func appendBytes[T ~string | ~[]byte](p []byte, has bool, v T) []byte {
	if !has {
		return p
	}
	p = binary.AppendUvarint(p, uint64(len(v)))
	return append(p, v...)
}

// load returns the log's events. Payload shares the log's bytes, which
// never change, with its capacity cut to its length, and so does State,
// but in a finished log's record (deltas), whose states load rebuilds.
func (l *memLog) load() []Event {
	out := make([]Event, 0, l.n)
	loc, p := l.loc, l.b
	varint := func() int64 {
		v, k := binary.Varint(p)
		p = p[k:]
		return v
	}
	uvarint := func() uint64 {
		v, k := binary.Uvarint(p)
		p = p[k:]
		return v
	}
	timeOf := func() time.Time {
		sec := varint()
		return time.Unix(sec, int64(uvarint())).In(loc)
	}
	field := func(has bool) []byte {
		if !has {
			return nil
		}
		n := uvarint()
		v := p[:n:n]
		p = p[n:]
		return v
	}
	var sec, nsec int64 // the time of the event before
	var prev []byte     // the state before
	run := string(field(true))
	for len(out) < l.n {
		e := Event{SagaID: l.id, Run: run, Seq: uint64(len(out)) + 1, Type: EventType(p[0])}
		flags := p[1]
		p = p[2:]
		e.Attempt = int(varint())
		if flags&packWholeTime != 0 {
			sec, nsec = varint(), int64(uvarint())
		} else {
			n := nsec + varint() // time.Unix takes a negative nsec too
			sec, nsec = sec+n/1e9, n%1e9
		}
		e.Time = time.Unix(sec, nsec).In(loc)
		e.Step = string(field(flags&packStep != 0))
		e.Error = string(field(flags&packErr != 0))
		if flags&packAt != 0 {
			e.At = timeOf()
		}
		if flags&packState != 0 {
			if l.deltas {
				pre, suf := int(uvarint()), int(uvarint())
				mid := field(true)
				state := make([]byte, 0, pre+len(mid)+suf)
				state = append(append(append(state, prev[:pre]...), mid...), prev[len(prev)-suf:]...)
				e.State = state
			} else {
				e.State = field(true)
			}
			prev = e.State
		}
		e.Signal = string(field(flags&packSignal != 0))
		e.DedupKey = string(field(flags&packDedupKey != 0))
		e.Payload = field(flags&packPayload != 0)
		out = append(out, e)
	}
	if len(out) > 0 {
		out[0].Definition, out[0].Version = l.definition, l.version
	}
	return out
}
