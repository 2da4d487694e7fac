package journal

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// replace replaces what f holds for id, whose hash is h, which f must
// hold: tests use it to point the index at other records.
func (f *finished) replace(h uint64, id string, locs []loc, end int64) {
	e := f.find(h, id)
	e.at, e.end = f.store(id, packLocs(nil, locs)), end
}

// testHash hashes the IDs of the tests' tables.
var testHash = newFinIndex("", defaultTuning, time.Hour).tune.hash

// has reports whether f holds id.
func (f *finished) has(id string) bool { return f.find(testHash(id), id) != nil }

// locsFor returns n made-up locations for instance i.
func locsFor(i, n int) []loc {
	locs := make([]loc, n)
	for k := range locs {
		locs[k] = diskLoc(1+i%7, int64(16+1000*i+100*k))
	}
	return locs
}

func TestFinishedHoldsManyInstances(t *testing.T) {
	t.Parallel()
	f := newFinished()
	const n = 50_000 // every part grows many times
	for i := range n {
		f.add(testHash(fmt.Sprintf("order-%d", i)), fmt.Sprintf("order-%d", i), locsFor(i, 1+i%9), int64(i))
	}
	require.Equal(t, n, f.len())
	for i := range n {
		packed, end, ok := f.get(testHash(fmt.Sprintf("order-%d", i)), fmt.Sprintf("order-%d", i))
		require.True(t, ok, i)
		assert.Equal(t, locsFor(i, 1+i%9), unpackLocs(nil, packed), i)
		assert.Equal(t, int64(i), end, i)
	}
	for i := range 1000 {
		assert.False(t, f.has(fmt.Sprintf("order-%d", n+i)), "never added")
		assert.False(t, f.has(fmt.Sprintf("Order-%d", i)), "never added")
	}
	seen := map[string]bool{}
	f.each(func(h uint64, id, packed []byte, end int64) bool {
		assert.Equal(t, testHash(string(id)), h)
		assert.False(t, seen[string(id)], "each visits %s once", id)
		seen[string(id)] = true
		return true
	})
	assert.Len(t, seen, n)
	visited := 0
	f.each(func(uint64, []byte, []byte, int64) bool {
		visited++
		return visited < 10
	})
	assert.Equal(t, 10, visited, "each stops when fn returns false")
}

func TestFinishedKeys(t *testing.T) {
	t.Parallel()
	f := newFinished()
	ids := []string{
		"", "a", "A", "заказ-🚀", "with\x00nul", "order-1", "order-1 ",
		strings.Repeat("k", 200_000), // larger than a chunk
		strings.Repeat("k", 199_999),
	}
	for i, id := range ids {
		f.add(testHash(id), id, locsFor(i, 3), int64(-i))
	}
	require.Equal(t, len(ids), f.len())
	for i, id := range ids {
		packed, end, ok := f.get(testHash(id), id)
		require.True(t, ok, "%.20q", id)
		assert.Equal(t, locsFor(i, 3), unpackLocs(nil, packed), "%.20q", id)
		assert.Equal(t, int64(-i), end)
	}
}

func TestFinishedReplace(t *testing.T) {
	t.Parallel()
	f := newFinished()
	f.add(testHash("a"), "a", locsFor(1, 2), 10)
	f.add(testHash("b"), "b", locsFor(2, 2), 20)
	f.replace(testHash("a"), "a", locsFor(3, 5), 30)
	assert.Equal(t, 2, f.len())
	packed, end, ok := f.get(testHash("a"), "a")
	require.True(t, ok)
	assert.Equal(t, locsFor(3, 5), unpackLocs(nil, packed))
	assert.Equal(t, int64(30), end)
	packed, _, ok = f.get(testHash("b"), "b")
	require.True(t, ok)
	assert.Equal(t, locsFor(2, 2), unpackLocs(nil, packed))
}
