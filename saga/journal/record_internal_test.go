package journal

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga"
)

// The record codec: appendFrame/readFrame frame a payload with its length
// and checksum, appendPayload/decodePayload encode a Create or Append.

var codecTime = time.Date(2025, time.March, 7, 9, 30, 15, 987654321, time.UTC)

// fullEvent returns an event of id with every field set.
func fullEvent(id string, seq uint64) saga.Event {
	return saga.Event{
		SagaID:     id,
		Run:        "run-" + id,
		Seq:        seq,
		Type:       saga.EventSignalReceived,
		Time:       codecTime.Add(time.Duration(seq) * time.Millisecond),
		Step:       "reserve-stock",
		Attempt:    3,
		Error:      "connection reset by peer",
		At:         codecTime.Add(90 * time.Second),
		State:      json.RawMessage(`{"order":"o-1","amount":1250}`),
		Signal:     "approved",
		DedupKey:   "dedup-7",
		Payload:    json.RawMessage(`{"by":"ops"}`),
		Definition: "transfer",
		Version:    7,
	}
}

// codecCases are records with the corners of the encoding. Their times are
// in UTC without a monotonic reading: what decoding gives back.
func codecCases() []struct {
	name string
	r    record
} {
	const id = "order-1"
	withTimes := func(times ...time.Time) []saga.Event {
		events := make([]saga.Event, len(times))
		for i, tm := range times {
			events[i] = saga.Event{SagaID: id, Seq: uint64(i + 1), Type: saga.EventStepStarted, Time: tm, At: tm}
		}
		return events
	}
	many := make([]saga.Event, 1000)
	for i := range many {
		many[i] = fullEvent(id, 42+uint64(i))
		many[i].State = json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))
	}
	unicode := fullEvent("заказ-🚀", 1)
	unicode.Run, unicode.Step, unicode.Error = "rún-ß", "réserver-📦", "ошибка: \x00\xff\xfe не UTF-8"
	unicode.Signal, unicode.DedupKey, unicode.Definition = "信号", "\u2028key", "Überweisung"

	type tc = struct {
		name string
		r    record
	}
	return []tc{
		{"all fields", record{kind: kindCreate, sagaID: id, events: []saga.Event{fullEvent(id, 1)}}},
		{"zero event", record{kind: kindAppend, sagaID: id, expected: 5, events: []saga.Event{{SagaID: id}}}},
		{"empty saga ID", record{kind: kindAppend, events: []saga.Event{{Seq: 2, Type: saga.EventStepStarted}}}},
		{"nil and empty bytes", record{kind: kindAppend, sagaID: id, expected: 1, events: []saga.Event{
			{SagaID: id, Seq: 2, State: nil, Payload: json.RawMessage{}},
			{SagaID: id, Seq: 3, State: json.RawMessage{}, Payload: nil},
			{SagaID: id, Seq: 4, State: json.RawMessage{}, Payload: json.RawMessage{}},
			{SagaID: id, Seq: 5, State: json.RawMessage("0"), Payload: json.RawMessage("\x00")},
		}}},
		{"times", record{kind: kindAppend, sagaID: id, events: withTimes(
			time.Time{},
			time.Unix(0, 0).UTC(),
			time.Unix(0, 1).UTC(),
			time.Unix(-1, 999_999_999).UTC(),
			time.Date(1, time.January, 1, 0, 0, 0, 1, time.UTC),
			time.Date(1, time.January, 1, 0, 0, 1, 0, time.UTC),
			time.Date(1969, time.July, 20, 20, 17, 40, 123, time.UTC),
			time.Date(9999, time.December, 31, 23, 59, 59, 999_999_999, time.UTC),
			codecTime,
		)}},
		{"negative and extreme integers", record{kind: kindAppend, sagaID: id, expected: math.MaxUint64 - 2, events: []saga.Event{
			{SagaID: id, Seq: math.MaxUint64 - 1, Attempt: -1, Version: -1},
			{SagaID: id, Seq: math.MaxUint64, Attempt: math.MinInt32, Version: math.MaxInt32},
			{SagaID: id, Seq: 0, Attempt: math.MaxInt, Version: math.MinInt},
			{SagaID: id, Seq: 1, Attempt: math.MaxInt >> 8, Version: math.MinInt >> 8},
			{SagaID: id, Seq: 2, Type: saga.EventType(255)},
		}}},
		{"unicode", record{kind: kindCreate, sagaID: unicode.SagaID, events: []saga.Event{unicode}}},
		{"large state", record{kind: kindAppend, sagaID: id, expected: 9, events: []saga.Event{{
			SagaID: id, Seq: 10, State: bytes.Repeat([]byte("ab"), 100_000),
		}}}},
		{"many events", record{kind: kindAppend, sagaID: id, expected: 41, events: many}},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range codecCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prefix := []byte("earlier frames")
			buf, err := appendFrame(bytes.Clone(prefix), &tc.r)
			require.NoError(t, err)
			require.Equal(t, prefix, buf[:len(prefix)], "appendFrame keeps what buf held")
			frame := buf[len(prefix):]

			payload, size, ok := readFrame(append(frame, 0xde, 0xad, 0xbe, 0xef))
			require.True(t, ok, "readFrame")
			assert.Equal(t, len(frame), size)
			assert.Equal(t, appendPayload(nil, &tc.r), payload)

			got, err := decodePayload(payload)
			require.NoError(t, err)
			assert.Equal(t, tc.r, got)
			for i := range got.events {
				assert.Equal(t, tc.r.events[i].State == nil, got.events[i].State == nil, "event %d: nil State", i)
				assert.Equal(t, tc.r.events[i].Payload == nil, got.events[i].Payload == nil, "event %d: nil Payload", i)
			}
		})
	}
}

func TestRecordDecodedTimesAreUTC(t *testing.T) {
	t.Parallel()
	// A time in another zone, with a monotonic reading, comes back as the
	// same instant in UTC.
	zoned := time.Date(2025, time.May, 1, 14, 0, 0, 5, time.FixedZone("CEST", 2*60*60))
	now := time.Now()
	r := record{kind: kindCreate, sagaID: "x", events: []saga.Event{{SagaID: "x", Seq: 1, Time: zoned, At: now}}}
	got, err := decodePayload(appendPayload(nil, &r))
	require.NoError(t, err)
	e := got.events[0]
	assert.True(t, e.Time.Equal(zoned), "Time %v, want %v", e.Time, zoned)
	assert.True(t, e.At.Equal(now), "At %v, want %v", e.At, now)
	assert.Equal(t, time.UTC, e.Time.Location())
	assert.Equal(t, zoned.UTC(), e.Time)
	assert.Equal(t, now.Round(0).UTC(), e.At)
}

func TestAppendFrameRefusesOversizedRecord(t *testing.T) {
	t.Parallel()
	r := record{kind: kindCreate, sagaID: "x", events: []saga.Event{{SagaID: "x", Seq: 1, State: make([]byte, maxRecord)}}}
	buf, err := appendFrame([]byte("kept"), &r)
	require.ErrorIs(t, err, saga.ErrInvalidArgument)
	assert.Equal(t, []byte("kept"), buf, "appendFrame leaves buf as it was")
}

// smallFrames returns the frames of the codec cases that are small enough
// to flip every bit of.
func smallFrames(t testing.TB) map[string][]byte {
	t.Helper()
	frames := map[string][]byte{}
	for _, tc := range codecCases() {
		frame, err := appendFrame(nil, &tc.r)
		require.NoError(t, err)
		if len(frame) <= 1024 {
			frames[tc.name] = frame
		}
	}
	require.NotEmpty(t, frames)
	return frames
}

func TestReadFrameRejectsEveryTruncation(t *testing.T) {
	t.Parallel()
	for _, tc := range codecCases() {
		frame, err := appendFrame(nil, &tc.r)
		require.NoError(t, err)
		for n := range len(frame) {
			if _, _, ok := readFrame(frame[:n]); ok {
				t.Fatalf("%s: frame of %d bytes cut to %d was read", tc.name, len(frame), n)
			}
		}
	}
}

func TestReadFrameRejectsEveryBitFlip(t *testing.T) {
	t.Parallel()
	for name, frame := range smallFrames(t) {
		for bit := range 8 * len(frame) {
			damaged := bytes.Clone(frame)
			damaged[bit/8] ^= 1 << (bit % 8)
			// Room after the frame, so that a longer length is not
			// rejected only for want of bytes.
			damaged = append(damaged, make([]byte, 64)...)
			if _, _, ok := readFrame(damaged); ok {
				t.Fatalf("%s: frame with bit %d of byte %d flipped was read", name, bit%8, bit/8)
			}
		}
	}
}

func TestReadFrameRejectsEmptyAndZeroFrames(t *testing.T) {
	t.Parallel()
	for _, b := range [][]byte{nil, {}, make([]byte, frameHeader-1), make([]byte, frameHeader), make([]byte, 4096)} {
		_, _, ok := readFrame(b)
		assert.False(t, ok, "%d bytes", len(b))
	}
	// A length beyond maxRecord is damage even when the bytes are there.
	huge := make([]byte, frameHeader)
	binary.LittleEndian.PutUint32(huge, maxRecord+1)
	_, _, ok := readFrame(huge)
	assert.False(t, ok)
}

// payloadWithCount returns a payload that claims count events and holds
// rest after the count.
func payloadWithCount(count uint64, rest []byte) []byte {
	b := []byte{byte(kindAppend)}
	b = appendString(b, "order-1")
	b = binary.AppendUvarint(b, 3)
	b = binary.AppendUvarint(b, count)
	return append(b, rest...)
}

func TestDecodePayloadRejects(t *testing.T) {
	t.Parallel()
	valid := appendPayload(nil, &record{kind: kindCreate, sagaID: "order-1", events: []saga.Event{fullEvent("order-1", 1)}})
	withKind := func(k byte) []byte {
		b := bytes.Clone(valid)
		b[0] = k
		return b
	}
	withTime := func(tag byte, nsec uint64) []byte {
		b := payloadWithCount(1, nil)
		b = appendString(b, "run")
		b = binary.AppendUvarint(b, 4)
		b = append(b, byte(saga.EventStepStarted), tag)
		if tag == 1 {
			b = binary.AppendVarint(b, 1000)
			b = binary.AppendUvarint(b, nsec)
		}
		return append(b, make([]byte, 14)...)
	}
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"empty", nil},
		{"trailing byte", append(bytes.Clone(valid), 0)},
		{"trailing bytes", append(bytes.Clone(valid), valid...)},
		{"kind 0", withKind(0)},
		{"kind 3", withKind(3)},
		{"kind 255", withKind(255)},
		{"zero events", appendPayload(nil, &record{kind: kindAppend, sagaID: "order-1", expected: 3})},
		{"cut short", valid[:len(valid)-1]},
		{"cut after kind", valid[:1]},
		{"string longer than the payload", append([]byte{byte(kindCreate)}, binary.AppendUvarint(nil, 1<<40)...)},
		{"overlong varint", append([]byte{byte(kindCreate)}, bytes.Repeat([]byte{0xff}, 11)...)},
		{"time tag 2", withTime(2, 0)},
		{"nanoseconds out of range", withTime(1, 1e9)},
		{"attempt overflows a varint", func() []byte {
			b := payloadWithCount(1, nil)
			b = append(b, 0, 2, byte(saga.EventStepStarted), 0, 0) // run, seq, type, time, step
			b = append(b, bytes.Repeat([]byte{0xff}, 9)...)
			b = append(b, 0x02) // a 65th bit
			return append(b, make([]byte, 10)...)
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := decodePayload(tc.payload)
			assert.ErrorIs(t, err, errDecode)
			assert.Zero(t, r)
		})
	}
}

// TestDecodePayloadAbsurdCountAllocatesLittle is not parallel: it counts
// the bytes the whole process allocates, so it runs while the parallel
// tests wait.
func TestDecodePayloadAbsurdCountAllocatesLittle(t *testing.T) {
	// Each claims far more events than the bytes after it could hold. Had
	// decodePayload believed any of them, it would have allocated at least
	// a gigabyte (an event takes over 200 bytes in memory).
	counts := []uint64{math.MaxUint64, 1 << 62, 1 << 40, 1 << 32, 1 << 22, 100/minEvent + 1}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, n := range counts {
		_, err := decodePayload(payloadWithCount(n, make([]byte, 100)))
		require.ErrorIs(t, err, errDecode, "count %d", n)
	}
	runtime.ReadMemStats(&after)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20), "bytes allocated")
}

// fuzzSeeds returns encoded payloads of the codec cases, and mangled ones.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	for _, tc := range codecCases() {
		if tc.name == "many events" || tc.name == "large state" {
			continue // too big to be useful as a seed
		}
		p := appendPayload(nil, &tc.r)
		seeds = append(seeds, p, p[:len(p)/2], append(bytes.Clone(p), 0))
		flipped := bytes.Clone(p)
		flipped[len(p)/3] ^= 0x10
		seeds = append(seeds, flipped)
	}
	return append(seeds, nil, []byte{1}, []byte{2, 0, 0, 0}, payloadWithCount(math.MaxUint64, make([]byte, 30)),
		payloadWithCount(2, make([]byte, 28)), payloadWithCount(1, make([]byte, 14)))
}

func FuzzDecodePayload(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		r, err := decodePayload(payload)
		if err != nil {
			require.ErrorIs(t, err, errDecode)
			require.Zero(t, r)
			return
		}
		require.NotEmpty(t, r.events)
		require.True(t, r.kind == kindCreate || r.kind == kindAppend, "kind %d", r.kind)
		again, err := decodePayload(appendPayload(nil, &r))
		require.NoError(t, err, "decoding the re-encoded record")
		require.Equal(t, r, again, "decode(encode(decode(payload)))")
	})
}

func FuzzReadFrame(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		frame, err := appendFrame(nil, &record{kind: kindCreate, sagaID: "x", events: []saga.Event{{SagaID: "x", Seq: 1, State: seed}}})
		require.NoError(f, err)
		f.Add(frame)
		f.Add(frame[:len(frame)-1])
		f.Add(append(frame, seed...))
		damaged := bytes.Clone(frame)
		damaged[len(frame)/2] ^= 1
		f.Add(damaged)
	}
	f.Add(make([]byte, frameHeader))
	f.Add(append(binary.LittleEndian.AppendUint32(nil, 1), make([]byte, 5)...)) // CRC of a zero byte is not 0
	f.Fuzz(func(t *testing.T, b []byte) {
		payload, size, ok := readFrame(b)
		if !ok {
			require.Nil(t, payload)
			require.Zero(t, size)
			return
		}
		require.GreaterOrEqual(t, len(b), frameHeader)
		n := int(binary.LittleEndian.Uint32(b))
		require.Positive(t, n)
		require.LessOrEqual(t, n, maxRecord)
		require.Equal(t, frameHeader+n, size)
		require.LessOrEqual(t, size, len(b))
		require.Equal(t, b[frameHeader:size], payload)
		require.Equal(t, binary.LittleEndian.Uint32(b[4:]), crc32.Checksum(payload, castagnoli), "checksum of the payload")
	})
}

func TestJournalKeepsIntegersBeyondInt32(t *testing.T) {
	t.Parallel()
	// An int field the journal acknowledged must not make it unreadable:
	// Attempt and Version are ints, and nothing upstream bounds them.
	dir := t.TempDir()
	log := []saga.Event{
		{SagaID: "x", Run: "r", Seq: 1, Type: saga.EventSagaStarted, Definition: "d", Version: math.MaxInt >> 8},
		{SagaID: "x", Run: "r", Seq: 2, Type: saga.EventStepStarted, Step: "s", Attempt: math.MaxInt},
		{SagaID: "x", Run: "r", Seq: 3, Type: saga.EventStepAttemptFailed, Step: "s", Attempt: math.MinInt, Error: "e"},
	}
	j := openJournal(t, dir, Options{})
	require.NoError(t, j.Create(t.Context(), log[:1]))
	require.NoError(t, j.Append(t.Context(), "x", 1, log[1:]))
	require.NoError(t, j.Close())

	j = openJournal(t, dir, Options{})
	got, err := j.Load(t.Context(), "x")
	require.NoError(t, err)
	assert.Equal(t, log, got)
}
