package journal

import (
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCompactWhileCompactingIsRefused(t *testing.T) {
	t.Parallel()
	j := openJournal(t, t.TempDir(), Options{CompactAfter: -1})
	writing, release := make(chan struct{}), make(chan struct{})
	var held atomic.Bool
	j.fsync = func(f *os.File) error {
		if strings.HasSuffix(f.Name(), ".tmp") && held.CompareAndSwap(false, true) { // the first base
			close(writing)
			<-release
		}
		return f.Sync()
	}
	ctx := t.Context()
	require.NoError(t, j.Create(ctx, logOf("a", 2)))

	first := make(chan error, 1)
	go func() { first <- j.Compact(ctx) }()
	<-writing
	assert.ErrorIs(t, j.Compact(ctx), ErrCompacting)
	close(release)
	require.NoError(t, <-first)
	require.NoError(t, j.Compact(ctx), "once it has ended, another may run")

	events, err := j.Load(ctx, "a")
	require.NoError(t, err)
	assert.Len(t, events, 2)
}
