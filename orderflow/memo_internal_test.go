package orderflow

import (
	"math/rand/v2"
	"reflect"
	"runtime"
	"runtime/metrics"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/clock"
)

type testRecord struct {
	n    int
	text span
}

func setupMemo(t *testing.T, keep time.Duration, last int) (*memo[testRecord], *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(time.Time{})
	m := newMemo[testRecord](keep, last, clk)
	return &m, clk
}

func addRecord(m *memo[testRecord], key string, n int) {
	i, r := m.add(key)
	r.n = n
	r.text = m.put(i, "text of "+key)
}

// assertRemembers checks which keys m finds, with their records.
func assertRemembers(t *testing.T, m *memo[testRecord], want map[string]bool) {
	t.Helper()
	for key, ok := range want {
		n, found := m.find(key)
		if !assert.Equal(t, ok, found, "find(%q)", key) || !ok {
			continue
		}
		assert.Equal(t, "text of "+key, m.str(n, m.record(n).val.text), key)
		assert.Equal(t, m.get(key), &m.record(n).val)
	}
}

func TestMemoFindsWhatItWasGiven(t *testing.T) {
	t.Parallel()
	m, _ := setupMemo(t, 0, 0)
	const n = 3*chunkRecords + 7 // several chunks
	for i := range n {
		addRecord(m, "k"+strconv.Itoa(i), i)
	}
	assert.Equal(t, n, m.len())
	for i := range n {
		r := m.get("k" + strconv.Itoa(i))
		require.NotNil(t, r, i)
		assert.Equal(t, i, r.n)
	}
	assert.Nil(t, m.get("k"+strconv.Itoa(n)))
	assert.Nil(t, m.get(""))

	var keys []string
	m.each(func(n uint64, key string, r *testRecord) {
		assert.Equal(t, "text of "+key, m.str(n, r.text))
		keys = append(keys, key)
	})
	require.Len(t, keys, n)
	assert.Equal(t, "k0", keys[0], "oldest first")
	assert.Equal(t, "k"+strconv.Itoa(n-1), keys[n-1])
}

func TestMemoForgetsPastItsWindowOldestFirst(t *testing.T) {
	t.Parallel()
	m, clk := setupMemo(t, time.Minute, 0)
	for i := range 2 * chunkRecords {
		addRecord(m, "old"+strconv.Itoa(i), i)
	}
	clk.Advance(30 * time.Second)
	addRecord(m, "mid", 0)
	clk.Advance(30 * time.Second) // old* are a minute old: not yet past it
	addRecord(m, "new", 0)
	assertRemembers(t, m, map[string]bool{"old0": true, "mid": true, "new": true})

	clk.Advance(time.Nanosecond) // past it for old*, whose chunks go
	addRecord(m, "newer", 0)
	assertRemembers(t, m, map[string]bool{"old0": false, "old2047": false, "mid": true, "new": true, "newer": true})
	assert.Equal(t, 3, m.len())
	assert.Len(t, m.chunks, 1)

	// A forgotten key may be recorded again, as a new record.
	addRecord(m, "old0", 7)
	assert.Equal(t, 7, m.get("old0").n)

	clk.Advance(time.Hour)
	addRecord(m, "last", 0)
	assertRemembers(t, m, map[string]bool{"mid": false, "new": false, "newer": false, "old0": false, "last": true})
	assert.Equal(t, 1, m.len())
}

func TestMemoForgetsBeyondItsLastOldestFirst(t *testing.T) {
	t.Parallel()
	m, _ := setupMemo(t, 0, chunkRecords+2)
	for i := range chunkRecords + 2 {
		addRecord(m, "k"+strconv.Itoa(i), i)
	}
	assert.Equal(t, chunkRecords+2, m.len(), "at the limit, nothing is forgotten")
	assertRemembers(t, m, map[string]bool{"k0": true, "k1": true})

	addRecord(m, "a", 0)
	assert.Equal(t, chunkRecords+2, m.len())
	assertRemembers(t, m, map[string]bool{"k0": false, "k1": true, "a": true})

	for i := range chunkRecords {
		addRecord(m, "b"+strconv.Itoa(i), i)
	}
	assert.Equal(t, chunkRecords+2, m.len())
	assertRemembers(t, m, map[string]bool{"k1": false, "k1025": true, "a": true, "b0": true, "b1023": true})
	assert.Len(t, m.chunks, 2, "the first chunk, all forgotten, went")
	assert.Equal(t, chunkRecords+2, m.index.n, "what is forgotten leaves the index")

	// A forgotten key may be recorded again, as a new record.
	addRecord(m, "k0", 7)
	assert.Equal(t, 7, m.get("k0").n)
	assert.Nil(t, m.get("k1025"))
}

func TestMemoForgetsByWhicheverLimitComesFirst(t *testing.T) {
	t.Parallel()
	m, clk := setupMemo(t, time.Minute, 3)
	for _, k := range []string{"a", "b", "c", "d"} {
		addRecord(m, k, 0)
	}
	assertRemembers(t, m, map[string]bool{"a": false, "b": true, "c": true, "d": true})

	clk.Advance(time.Minute + time.Nanosecond)
	addRecord(m, "e", 0)
	assertRemembers(t, m, map[string]bool{"b": false, "c": false, "d": false, "e": true})
	assert.Equal(t, 1, m.len())
}

func TestMemoKeepsKeysWhoseHashesClash(t *testing.T) {
	t.Parallel()
	m, clk := setupMemo(t, time.Minute, 0)
	m.bits = 3 // three hashes for many keys: most clash
	for i := range 40 {
		addRecord(m, "a"+strconv.Itoa(i), i)
	}
	for i := range 40 {
		r := m.get("a" + strconv.Itoa(i))
		require.NotNil(t, r, i)
		assert.Equal(t, i, r.n)
	}
	assert.Nil(t, m.get("b"))

	clk.Advance(2 * time.Minute)
	for i := range 40 {
		addRecord(m, "b"+strconv.Itoa(i), i)
	}
	for i := range 40 {
		assert.Nil(t, m.get("a"+strconv.Itoa(i)), "forgotten")
		r := m.get("b" + strconv.Itoa(i))
		require.NotNil(t, r, i)
		assert.Equal(t, i, r.n)
	}
	assert.Equal(t, 40, m.index.n, "what is forgotten leaves the index")
}

// The index against a model: random inserts and removals, many of them
// with clashing hashes and runs that wrap around the end of the table.
func TestMemoIndexRemovesWithoutLosingOthers(t *testing.T) {
	t.Parallel()
	var x memoIndex
	model := map[memoSlot]bool{}
	rng := rand.New(rand.NewPCG(1, 2))
	n := uint32(0)
	for step := range 200_000 {
		if len(model) < 600 && (len(model) == 0 || rng.IntN(2) == 0) {
			h := uint32(1023 - rng.IntN(8)) // near the end of a 1,024-slot table
			if rng.IntN(4) == 0 {
				h = uint32(1 + rng.IntN(1<<20))
			}
			n++
			x.insert(h, n)
			model[memoSlot{h, n}] = true
		} else {
			for sl := range model { // any one
				x.remove(sl.hash, sl.n)
				delete(model, sl)
				break
			}
		}
		if step%997 == 0 {
			require.Equal(t, len(model), x.n)
			for sl := range model {
				require.True(t, x.has(sl), "step %d lost %v", step, sl)
			}
		}
	}
}

// has reports whether the entry is where a lookup finds it: on the run of
// occupied slots that starts at its hash's home.
func (x *memoIndex) has(want memoSlot) bool {
	for i := want.hash & x.mask; x.slots[i].hash != 0; i = (i + 1) & x.mask {
		if x.slots[i] == want {
			return true
		}
	}
	return false
}

// A memo's records and text hold no pointers: remembering many records
// adds next to nothing to the heap the collector scans. The test measures
// the whole heap, so it does not run in parallel with other tests.
func TestMemoGivesTheCollectorNothingToScan(t *testing.T) {
	const records = 100 * chunkRecords
	m, _ := setupMemo(t, 0, 0)
	keys := make([]string, records)
	for i := range keys {
		keys[i] = strconv.Itoa(i)
	}
	before := scannableHeap()
	for i, key := range keys {
		addRecord(m, key, i)
	}
	grew := float64(scannableHeap()) - float64(before)
	assert.Less(t, grew/records, 1.0, "scannable bytes per record")
	assertRemembers(t, m, map[string]bool{keys[0]: true, keys[records-1]: true})
}

// scannableHeap returns the bytes of heap that the collector scans, after
// a collection.
func scannableHeap() uint64 {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/gc/scan/heap:bytes"}}
	metrics.Read(sample)
	return sample[0].Value.Uint64()
}

// BenchmarkMemo records a new key per operation, as a service does, in a
// memo that remembers the last 100,000, forgetting one per operation.
func BenchmarkMemo(b *testing.B) {
	clk := clock.NewFake(time.Time{})
	m := newMemo[testRecord](100_000, 0, clk)
	keys := make([]string, 1<<18)
	for i := range keys {
		keys[i] = strconv.Itoa(i) + ".123/payment"
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		key := keys[i%len(keys)]
		if m.get(key) != nil {
			b.Fatal(key, "remembered")
		}
		n, r := m.add(key)
		r.n, r.text = i, m.put(n, "order")
		clk.Advance(1)
		i++
	}
}

// The records of the services' memos hold no pointers, as a memo requires:
// a record with a string or a slice would hide it from the collector.
func TestMemoRecordsHoldNoPointers(t *testing.T) {
	t.Parallel()
	for _, r := range []any{chargeRecord{}, reservationRecord{}, shipmentRecord{}, testRecord{}} {
		typ := reflect.TypeOf(r)
		assert.False(t, hasPointers(typ), "%v holds a pointer", typ)
	}
	assert.True(t, hasPointers(reflect.TypeOf(struct {
		n int
		s [2]struct{ p string }
	}{})), "the check finds a pointer nested in an array")
}

// hasPointers reports whether a value of typ holds a Go pointer.
func hasPointers(typ reflect.Type) bool {
	switch typ.Kind() {
	case reflect.Array:
		return typ.Len() > 0 && hasPointers(typ.Elem())
	case reflect.Struct:
		for i := range typ.NumField() {
			if hasPointers(typ.Field(i).Type) {
				return true
			}
		}
		return false
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return false
	}
	return true // pointers, strings, slices, maps, channels, functions, interfaces
}
