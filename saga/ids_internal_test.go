package saga

import (
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewUUIDMakesDistinctVersion4UUIDs(t *testing.T) {
	t.Parallel()
	seen := make(map[string]bool)
	for range 10_000 {
		id := newUUID()
		u, err := uuid.Parse(id)
		require.NoError(t, err, id)
		assert.Equal(t, uuid.Version(4), u.Version(), id)
		assert.Equal(t, uuid.RFC4122, u.Variant(), id)
		assert.Equal(t, u.String(), id, "canonical form")
		assert.False(t, seen[id], "duplicate %s", id)
		seen[id] = true
	}
}

func BenchmarkNewUUID(b *testing.B) {
	b.Run("saga", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = newUUID()
		}
	})
	b.Run("uuid.NewString", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = uuid.NewString()
		}
	})
}
