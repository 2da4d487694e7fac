package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram counts durations in buckets at most 1/64 of their value wide
// (exact below 128ns), so that its percentiles are within 1.6% of the true
// ones, in a fixed 30 KB however many orders a run makes. It is safe for
// concurrent use.
type histogram struct {
	counts [bucketCount]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64
}

// subBits is how many bits below its leading one a duration's bucket
// keeps: each doubling of the durations is split into 1<<subBits buckets.
const (
	subBits     = 6
	bucketCount = (64 - subBits) << subBits
)

// bucket returns the bucket of v nanoseconds: v itself below 1<<(subBits+1),
// and above that v's exponent and the subBits bits after its leading one.
func bucket(v uint64) int {
	e := max(bits.Len64(v)-subBits-1, 0)
	return e<<subBits + int(v>>e)
}

// lowest returns the least duration, in nanoseconds, of bucket b.
func lowest(b int) uint64 {
	if b < 2<<subBits {
		return uint64(b)
	}
	e := b>>subBits - 1
	return uint64(b-e<<subBits) << e
}

// record counts d; a negative d counts as zero.
func (h *histogram) record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucket(uint64(v))].Add(1)
	h.n.Add(1)
	for m := h.max.Load(); v > m && !h.max.CompareAndSwap(m, v); m = h.max.Load() {
	}
}

// quantile returns the duration that a fraction p of the recorded ones do
// not exceed, as the highest duration of its bucket, and never more than
// the longest recorded; 0 if none was.
func (h *histogram) quantile(p float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := min(n, uint64(p*float64(n))+1) // 1-based, as in a sorted slice's index p*n
	var seen uint64
	for b := range h.counts {
		if seen += h.counts[b].Load(); seen >= rank {
			return min(time.Duration(lowest(b+1)-1), h.longest())
		}
	}
	return h.longest()
}

// longest returns the longest duration recorded.
func (h *histogram) longest() time.Duration { return time.Duration(h.max.Load()) }
