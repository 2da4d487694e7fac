package backoff

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDelay(t *testing.T) {
	t.Parallel()
	const ms = time.Millisecond
	tests := []struct {
		name       string
		attempt    int
		initial    time.Duration
		max        time.Duration
		multiplier float64
		jitter     float64
		r          float64
		want       time.Duration
	}{
		{"first attempt", 1, 100 * ms, time.Second, 2, 0, 0, 100 * ms},
		{"doubles", 2, 100 * ms, time.Second, 2, 0, 0, 200 * ms},
		{"third", 3, 100 * ms, time.Second, 2, 0, 0, 400 * ms},
		{"capped", 5, 100 * ms, time.Second, 2, 0, 0, time.Second},
		{"huge attempt capped", 10000, 100 * ms, time.Second, 2, 0, 0, time.Second},
		{"multiplier below one is constant", 4, 100 * ms, time.Second, 0.5, 0, 0, 100 * ms},
		{"attempt below one counts as one", 0, 100 * ms, time.Second, 2, 0, 0, 100 * ms},
		{"jitter low end", 1, 100 * ms, time.Second, 2, 0.5, 0, 50 * ms},
		{"jitter middle", 1, 100 * ms, time.Second, 2, 0.5, 0.5, 100 * ms},
		{"jitter high end", 1, 100 * ms, time.Second, 2, 0.5, 0.999999, 149999900 * time.Nanosecond},
		{"jitter never exceeds max", 4, 100 * ms, time.Second, 2, 1, 0.99, time.Second},
		{"jitter clamped", 1, 100 * ms, time.Second, 2, 7, 0, 0},
		{"no initial", 3, 0, time.Second, 2, 0, 0, 0},
		{"max below initial", 3, 100 * ms, ms, 2, 0, 0, 100 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Delay(tt.attempt, tt.initial, tt.max, tt.multiplier, tt.jitter, tt.r)
			assert.InDelta(t, float64(tt.want), float64(got), 200, "delay")
		})
	}
}
