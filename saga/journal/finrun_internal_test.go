package journal

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBloom(t *testing.T) {
	t.Parallel()
	const n = 100_000
	rng := rand.New(rand.NewPCG(1, 2))
	b := newBloom(n, 10)
	added := make([]uint64, n)
	for i := range added {
		added[i] = rng.Uint64()
		b.add(added[i])
	}
	for _, h := range added {
		require.True(t, b.has(h), "no false negative")
	}
	passed := 0
	for range n {
		if b.has(rng.Uint64()) {
			passed++
		}
	}
	rate := float64(passed) / n
	t.Logf("false positives: %.2f%% at 10 bits per entry", 100*rate)
	assert.Less(t, rate, 0.02)
	assert.Greater(t, rate, 0.0, "a filter this size is not perfect")

	assert.Nil(t, newBloom(n, 0), "no filter")
	assert.True(t, bloom(nil).has(42), "no filter passes everything")
	assert.Len(t, newBloom(0, 10), 8, "one block at least")
}

// testIndex returns an index of finished instances in a temporary
// directory, tuned by tune, whose runs it closes when the test ends.
func testIndex(t *testing.T, tune spillTuning) *finIndex {
	t.Helper()
	d := newFinIndex(t.TempDir(), tune, time.Hour)
	t.Cleanup(func() { assert.NoError(t, d.close()) })
	return d
}

// spillAll writes the memory table of d to a run, as the index job does.
func spillAll(t *testing.T, d *finIndex) {
	t.Helper()
	r, err := d.writeTables([]*finished{d.mem})
	require.NoError(t, err)
	d.mem = newFinished()
	d.runs = append([]*finRun{r}, d.runs...)
}

// fill adds instances from to to of id (which formats their IDs) to d,
// spilling every spillEvery of them.
func fill(t *testing.T, d *finIndex, id func(int) string, from, to, spillEvery int) {
	t.Helper()
	for i := from; i < to; i++ {
		d.add(id(i), locsFor(i, 1+i%5), int64(i))
		if (i+1)%spillEvery == 0 {
			spillAll(t, d)
		}
	}
}

// assertHolds checks that d finds instances from to to of id, and no
// others like them.
func assertHolds(t *testing.T, d *finIndex, id func(int) string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		packed, end, ok, err := d.find(id(i))
		require.NoError(t, err)
		require.True(t, ok, id(i))
		assert.Equal(t, locsFor(i, 1+i%5), unpackLocs(nil, packed), id(i))
		assert.Equal(t, int64(i), end, id(i))
	}
	for _, missing := range []string{id(to), id(to + 1), id(from) + "x", strings.ToUpper(id(from)), ""} {
		ok, err := d.has(missing)
		require.NoError(t, err)
		assert.False(t, ok, "%q was never added", missing)
	}
}

func orderID(i int) string { return fmt.Sprintf("order-%06d", i) }

func TestRunsHoldWhatWasSpilled(t *testing.T) {
	t.Parallel()
	tune := defaultTuning
	tune.block = 512
	d := testIndex(t, tune)
	fill(t, d, orderID, 0, 5000, 1000)
	require.Len(t, d.runs, 5)
	assert.Equal(t, 0, d.mem.len())
	fill(t, d, orderID, 5000, 5300, 1000) // in memory
	assert.Equal(t, 5300, d.len())
	assertHolds(t, d, orderID, 0, 5300)

	r := d.runs[0]
	assert.Equal(t, 1000, r.n)
	assert.Greater(t, len(r.firsts), 50, "blocks")
	assert.Len(t, r.offs, len(r.firsts)+1)
	records := 0
	for i := 4000; i < 5000; i++ {
		records += 1 + i%5
	}
	assert.Equal(t, records, r.records)
	assert.Equal(t, int64(4000), r.minEnd)
	st, err := r.f.Stat()
	require.NoError(t, err)
	assert.Equal(t, r.offs[len(r.offs)-1], st.Size(), "the file holds the blocks")
	_, err = os.Stat(r.f.Name())
	assert.ErrorIs(t, err, os.ErrNotExist, "unlinked")

	merged, err := d.merge(d.runs, nil, nil)
	require.NoError(t, err)
	for _, r := range d.runs {
		require.NoError(t, r.close())
	}
	d.runs = []*finRun{merged}
	assert.Equal(t, 5000, merged.n)
	assertHolds(t, d, orderID, 0, 5300)

	seen := map[string]bool{}
	require.NoError(t, d.each(func(id, packed []byte, end int64) bool {
		assert.False(t, seen[string(id)], "each visits %s once", id)
		seen[string(id)] = true
		return true
	}))
	assert.Len(t, seen, 5300)
}

func TestRunsCompareIDsNotHashes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		hash func(string) uint64
	}{
		// Every ID of a length collides: runs of equal hashes span
		// many blocks.
		{"one hash per length", func(id string) uint64 { return uint64(len(id)) }},
		// A few hashes, in no order of the IDs.
		{"eight hashes", func(id string) uint64 { return uint64(len(id)+strings.Count(id, "7")) % 8 << 60 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tune := defaultTuning
			tune.block, tune.hash = 256, tc.hash
			d := testIndex(t, tune)
			fill(t, d, orderID, 0, 600, 200)
			require.Len(t, d.runs, 3)
			assertHolds(t, d, orderID, 0, 600)
			merged, err := d.merge(d.runs, nil, nil)
			require.NoError(t, err)
			for _, r := range d.runs {
				require.NoError(t, r.close())
			}
			d.runs = []*finRun{merged}
			assertHolds(t, d, orderID, 0, 600)
		})
	}
}

// A Bloom filter that passes everything makes every lookup read a block:
// the IDs it does not hold must still be found missing.
func TestRunsWithoutFilterFindMissingIDs(t *testing.T) {
	t.Parallel()
	tune := defaultTuning
	tune.bloomBits, tune.block = 0, 256
	d := testIndex(t, tune)
	fill(t, d, orderID, 0, 500, 250)
	require.Len(t, d.runs, 2)
	reads := 0
	for _, r := range d.runs {
		r.readAt = func(f *os.File, b []byte, off int64) (int, error) {
			reads++
			return f.ReadAt(b, off)
		}
	}
	want := 0
	for i := 500; i < 600; i++ {
		ok, err := d.has(orderID(i))
		require.NoError(t, err)
		assert.False(t, ok)
		for _, r := range d.runs {
			if d.tune.hash(orderID(i)) >= r.firsts[0] {
				want++ // else no block can hold it
			}
		}
	}
	assert.Equal(t, want, reads, "one block per run and lookup")
	assert.Greater(t, reads, 150)
	assertHolds(t, d, orderID, 0, 500)
}

func TestRunKeys(t *testing.T) {
	t.Parallel()
	d := testIndex(t, defaultTuning)
	ids := []string{
		"", "a", "A", "заказ-🚀", "with\x00nul", "order-1", "order-1 ",
		strings.Repeat("k", 200_000), // larger than a block
		strings.Repeat("k", 199_999),
	}
	for i, id := range ids {
		d.add(id, locsFor(i, 3), int64(-i))
	}
	spillAll(t, d)
	for i, id := range ids {
		packed, end, ok, err := d.find(id)
		require.NoError(t, err)
		require.True(t, ok, "%.20q", id)
		assert.Equal(t, locsFor(i, 3), unpackLocs(nil, packed), "%.20q", id)
		assert.Equal(t, int64(-i), end)
	}
}

func TestRunReadErrors(t *testing.T) {
	t.Parallel()
	tune := defaultTuning
	tune.block = 256
	d := testIndex(t, tune)
	fill(t, d, orderID, 0, 300, 300)
	r := d.runs[0]
	broken := errors.New("disk on fire")
	for _, tc := range []struct {
		name   string
		readAt func(f *os.File, b []byte, off int64) (int, error)
		is     error
	}{
		{"error", func(*os.File, []byte, int64) (int, error) { return 0, broken }, broken},
		{"short", func(f *os.File, b []byte, off int64) (int, error) { return f.ReadAt(b[:len(b)-1], off) }, nil},
		{"damaged", func(f *os.File, b []byte, off int64) (int, error) {
			n, err := f.ReadAt(b, off)
			b[len(b)/2] ^= 1
			return n, err
		}, errRunDamaged},
	} {
		r.readAt = tc.readAt
		_, _, ok, err := d.find(orderID(7))
		assert.False(t, ok, tc.name)
		var re *runError
		require.ErrorAs(t, err, &re, tc.name)
		if tc.is != nil {
			assert.ErrorIs(t, err, tc.is, tc.name)
		}
		for what, err := range map[string]error{
			"each":  d.each(func([]byte, []byte, int64) bool { return true }),
			"merge": second(d.merge(d.runs, nil, nil)),
		} {
			assert.ErrorAs(t, err, &re, "%s: %s", tc.name, what)
			if tc.is != nil {
				assert.ErrorIs(t, err, tc.is, "%s: %s", tc.name, what)
			}
		}
	}
	r.readAt = (*os.File).ReadAt
	assertHolds(t, d, orderID, 0, 300)
}

func TestRunTalliesEnds(t *testing.T) {
	t.Parallel()
	d := testIndex(t, defaultTuning) // a tally per minute of the hour of retention
	base := codecTime.UnixNano()
	minute := int64(time.Minute)
	for i := range 600 {
		// Ten an hour, over 60 hours: more stretches than a run tallies.
		d.add(orderID(i), locsFor(i, 2), base+int64(i)*6*minute)
		if i == 299 {
			spillAll(t, d)
		}
	}
	spillAll(t, d)
	// Merged, they add up their tallies.
	r, err := d.merge(d.runs, nil, nil)
	require.NoError(t, err)
	for _, r := range d.runs {
		require.NoError(t, r.close())
	}
	d.runs = []*finRun{r}
	assert.LessOrEqual(t, len(r.ends), maxTallies)
	total := 0
	for _, t := range r.ends {
		total += t.records
	}
	assert.Equal(t, 1200, total)
	assert.Equal(t, 1200, r.records)
	for _, cut := range []int{0, 1, 100, 333, 599, 600} {
		cutoff := base + int64(cut)*6*minute
		expired := func(end int64) bool { return end < cutoff }
		got := r.expiredRecords(expired)
		assert.LessOrEqual(t, got, 2*cut, "never more than there are")
		assert.GreaterOrEqual(t, got, 2*cut-2*12, "at most a tally short (%d)", cut)
		records, dropped := d.count(expired)
		assert.Equal(t, 1200, records)
		assert.Equal(t, got, dropped)
		drop := map[string]struct{}{}
		d.expiredInMemory(expired, drop)
		require.NoError(t, expiredInRuns(d.runs, expired, drop, math.MaxInt, nil))
		assert.Len(t, drop, cut, "listed exactly")
	}
}

func second[T any](_ T, err error) error { return err }
