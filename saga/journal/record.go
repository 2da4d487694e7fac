package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/sagaflow/sagaflow/saga"
)

// A record is one Create or Append: the unit that is stored, checksummed
// and recovered whole or not at all. On disk it is framed as
//
//	length  uint32, little-endian: the payload's size
//	crc     uint32, little-endian: CRC-32C (Castagnoli) of the payload
//	payload kind, saga ID, expected sequence number, events
//
// and the payload encodes strings and byte slices with a uvarint length
// (byte slices as length+1, so that nil and empty stay apart), integers as
// varints, and times as seconds and nanoseconds in UTC.

const (
	frameHeader = 8
	// maxRecord bounds one record's payload; larger Creates and Appends
	// are refused, and a larger length read back is damage.
	maxRecord = 64 << 20
)

type recordKind byte

const (
	kindCreate recordKind = iota + 1
	kindAppend
)

// record is a decoded payload.
type record struct {
	kind     recordKind
	sagaID   string
	expected uint64
	events   []saga.Event
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errDecode is wrapped by every decoding failure.
var errDecode = errors.New("journal: malformed record")

// Encoding buffers are reused: a record is encoded into a scratch buffer
// outside the journal's lock, then copied into the batch, whose buffer the
// writer hands back once it is written. Neither is kept when a big record
// has grown it past maxSpare.
const maxSpare = 1 << 20

var scratchPool = sync.Pool{New: func() any { return new([]byte) }}

func getScratch() *[]byte { return scratchPool.Get().(*[]byte) }

func putScratch(b *[]byte) {
	if cap(*b) <= maxSpare {
		scratchPool.Put(b)
	}
}

// appendFrame appends r's framed encoding to buf.
func appendFrame(buf []byte, r *record) ([]byte, error) {
	start := len(buf)
	buf = append(buf, make([]byte, frameHeader)...)
	buf = appendPayload(buf, r)
	n := len(buf) - start - frameHeader
	if n > maxRecord {
		return buf[:start], fmt.Errorf("%w: record of %d bytes exceeds %d", saga.ErrInvalidArgument, n, maxRecord)
	}
	payload := buf[start+frameHeader:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(n))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(payload, castagnoli))
	return buf, nil
}

func appendPayload(b []byte, r *record) []byte {
	b = append(b, byte(r.kind))
	b = appendString(b, r.sagaID)
	b = binary.AppendUvarint(b, r.expected)
	b = binary.AppendUvarint(b, uint64(len(r.events)))
	for i := range r.events {
		e := &r.events[i]
		b = appendString(b, e.Run)
		b = binary.AppendUvarint(b, e.Seq)
		b = append(b, byte(e.Type))
		b = appendTime(b, e.Time)
		b = appendString(b, e.Step)
		b = binary.AppendVarint(b, int64(e.Attempt))
		b = appendString(b, e.Error)
		b = appendTime(b, e.At)
		b = appendBytes(b, e.State)
		b = appendString(b, e.Signal)
		b = appendString(b, e.DedupKey)
		b = appendBytes(b, e.Payload)
		b = appendString(b, e.Definition)
		b = binary.AppendVarint(b, int64(e.Version))
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, p []byte) []byte {
	if p == nil {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(p))+1)
	return append(b, p...)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// readFrame checks the frame at the start of b. It returns the payload and
// the frame's total size, or ok false if b does not start with a whole frame
// whose checksum matches.
func readFrame(b []byte) (payload []byte, size int, ok bool) {
	if len(b) < frameHeader {
		return nil, 0, false
	}
	n := binary.LittleEndian.Uint32(b)
	if n == 0 || n > maxRecord || uint64(n) > uint64(len(b)-frameHeader) {
		return nil, 0, false
	}
	payload = b[frameHeader : frameHeader+int(n)]
	if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return nil, 0, false
	}
	return payload, frameHeader + int(n), true
}

// decoder reads a payload, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", errDecode, what)
	}
	d.b = nil
}

func (d *decoder) uvarint(what string) uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) int(what string) int {
	v := d.varint(what)
	if v < math.MinInt || v > math.MaxInt {
		d.fail(what)
		return 0
	}
	return int(v)
}

func (d *decoder) byte(what string) byte {
	if len(d.b) == 0 {
		d.fail(what)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) take(n uint64, what string) []byte {
	if n > uint64(len(d.b)) {
		d.fail(what)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string(what string) string {
	return string(d.take(d.uvarint(what), what))
}

func (d *decoder) bytes(what string) []byte {
	n := d.uvarint(what)
	if n == 0 || d.err != nil {
		return nil
	}
	return append([]byte{}, d.take(n-1, what)...)
}

func (d *decoder) time(what string) time.Time {
	switch d.byte(what) {
	case 0:
		return time.Time{}
	case 1:
		sec := d.varint(what)
		nsec := d.uvarint(what)
		if nsec >= 1e9 {
			d.fail(what)
			return time.Time{}
		}
		return time.Unix(sec, int64(nsec)).UTC()
	}
	d.fail(what)
	return time.Time{}
}

// payloadSagaID returns the saga ID of a payload without decoding the
// rest, or ok false if it cannot be read.
func payloadSagaID(b []byte) (id []byte, ok bool) {
	if len(b) == 0 {
		return nil, false
	}
	n, k := binary.Uvarint(b[1:])
	if k <= 0 || n > uint64(len(b)-1-k) {
		return nil, false
	}
	return b[1+k : 1+k+int(n)], true
}

// minEvent is the fewest bytes an encoded event takes; it bounds how many
// events a payload can claim to hold.
const minEvent = 14

// decodePayload decodes a payload written by appendPayload.
func decodePayload(b []byte) (record, error) {
	r, _, err := decodeAppend(nil, b)
	return r, err
}

// decodeAppend decodes a payload written by appendPayload, appending its
// events to dst: r.events is the part of the returned slice they fill. On
// failure it returns dst as it was.
func decodeAppend(dst []saga.Event, b []byte) (record, []saga.Event, error) {
	d := decoder{b: b}
	var r record
	r.kind = recordKind(d.byte("kind"))
	if r.kind != kindCreate && r.kind != kindAppend {
		return record{}, dst, fmt.Errorf("%w: unknown kind %d", errDecode, r.kind)
	}
	r.sagaID = d.string("saga ID")
	r.expected = d.uvarint("expected sequence number")
	n := d.uvarint("event count")
	if d.err != nil || n == 0 || n > uint64(len(d.b)/minEvent) {
		d.fail("event count")
		return record{}, dst, d.err
	}
	out := slices.Grow(dst, int(n))
	r.events = out[len(dst) : len(dst)+int(n) : len(dst)+int(n)]
	for i := range r.events {
		e := &r.events[i]
		e.SagaID = r.sagaID
		e.Run = d.string("run")
		e.Seq = d.uvarint("seq")
		e.Type = saga.EventType(d.byte("type"))
		e.Time = d.time("time")
		e.Step = d.string("step")
		e.Attempt = d.int("attempt")
		e.Error = d.string("error")
		e.At = d.time("at")
		e.State = d.bytes("state")
		e.Signal = d.string("signal")
		e.DedupKey = d.string("dedup key")
		e.Payload = d.bytes("payload")
		e.Definition = d.string("definition")
		e.Version = d.int("version")
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		clear(r.events) // what a failed decode put in dst's spare room
		return record{}, dst, d.err
	}
	return r, out[:len(dst)+int(n)], nil
}
