package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBucketsCoverEveryDurationInOrder(t *testing.T) {
	t.Parallel()
	for b := 1; b < bucketCount; b++ {
		require.Less(t, lowest(b-1), lowest(b), "bucket %d", b)
		require.Equal(t, b-1, bucket(lowest(b)-1), "the value below bucket %d's least", b)
		require.Equal(t, b, bucket(lowest(b)), "bucket %d's least", b)
	}
	assert.Equal(t, bucketCount-1, bucket(math.MaxInt64))
	for v := range uint64(128) {
		assert.Equal(t, int(v), bucket(v), "exact below 128ns")
	}
}

func TestQuantilesMatchASortedSliceWithinABucket(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	var h histogram
	var all []time.Duration
	for range 100_000 {
		// Log-normal around a few milliseconds, with a long tail.
		d := time.Duration(math.Exp(rng.NormFloat64()*1.5) * float64(3*time.Millisecond))
		h.record(d)
		all = append(all, d)
	}
	slices.Sort(all)
	for _, p := range []float64{0, 0.5, 0.9, 0.95, 0.99, 0.999, 1} {
		want := all[min(len(all)-1, int(p*float64(len(all))))]
		got := h.quantile(p)
		assert.GreaterOrEqual(t, got, want, "p%v never understates", p*100)
		assert.InEpsilon(t, float64(want), float64(got), 1.0/64, "p%v", p*100)
	}
	assert.Equal(t, all[len(all)-1], h.longest())
	assert.Equal(t, all[len(all)-1], h.quantile(1), "capped at the longest")
}

func TestQuantilesOfFewOrNone(t *testing.T) {
	t.Parallel()
	var h histogram
	assert.Zero(t, h.quantile(0.99))
	h.record(-time.Second) // a clock that stepped back
	h.record(100)
	assert.Equal(t, time.Duration(0), h.quantile(0.4))
	assert.Equal(t, time.Duration(100), h.quantile(0.99))
	assert.Equal(t, time.Duration(100), h.longest())
}
