package sagatest_test

import (
	"testing"
	"time"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/sagatest"
)

func TestMemoryStoreConformance(t *testing.T) {
	t.Parallel()
	sagatest.Run(t, func(t *testing.T) saga.Store {
		s := saga.NewMemoryStore(saga.MemoryConfig{})
		t.Cleanup(func() { _ = s.Close() })
		return s
	}, sagatest.Capabilities{})
}

// TestMemoryStoreConformanceWithRetention runs the suite against a memory
// store whose retention policy is on but never due (its clock
// does not move), so that the eviction
// bookkeeping runs on every ending without changing what the suite sees.
func TestMemoryStoreConformanceWithRetention(t *testing.T) {
	t.Parallel()
	sagatest.Run(t, func(t *testing.T) saga.Store {
		s := saga.NewMemoryStore(saga.MemoryConfig{
			Clock:       clock.NewFake(time.Time{}),
			Retention:   time.Hour,
			MaxFinished: 1000,
		})
		t.Cleanup(func() { _ = s.Close() })
		return s
	}, sagatest.Capabilities{})
}
