// Package backoff computes retry delays: exponential growth, a cap and
// proportional jitter.
package backoff

import (
	"math"
	"time"
)

// Delay returns the wait before attempt+1 after attempt (1-based) failed:
// initial × multiplier^(attempt-1), capped at max, then scaled by a factor
// drawn uniformly from [1-jitter, 1+jitter] using r ∈ [0, 1), and capped at
// max again. A multiplier below 1 counts as 1, jitter is clamped to [0, 1],
// and the result is never negative.
func Delay(attempt int, initial, max time.Duration, multiplier, jitter, r float64) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	if initial <= 0 {
		return 0
	}
	if max <= 0 || max < initial {
		max = initial
	}
	if multiplier < 1 {
		multiplier = 1
	}
	d := float64(initial) * math.Pow(multiplier, float64(attempt-1))
	if d > float64(max) || math.IsInf(d, 0) || math.IsNaN(d) {
		d = float64(max)
	}
	jitter = math.Min(math.Max(jitter, 0), 1)
	if jitter > 0 {
		d *= 1 - jitter + 2*jitter*r
	}
	if d > float64(max) {
		d = float64(max)
	}
	if d < 0 {
		d = 0
	}
	return time.Duration(d)
}
