package clock

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDeadlineCtxAfterFunc covers what package context relies on but can
// only reach through races: registering on a context that is already done,
// and unregistering.
func TestDeadlineCtxAfterFunc(t *testing.T) {
	t.Parallel()
	c := &deadlineCtx{Context: context.Background(), done: make(chan struct{})}

	calls := 0
	stop := c.AfterFunc(func() { calls++ })
	assert.True(t, stop())
	assert.False(t, stop(), "already unregistered")

	c.AfterFunc(func() { calls++ })
	c.cancel(context.DeadlineExceeded)
	assert.Equal(t, 1, calls, "cancel runs registered functions synchronously")
	c.cancel(context.Canceled)
	require.ErrorIs(t, c.Err(), context.DeadlineExceeded, "only the first cancel counts")

	ran := make(chan struct{})
	stop = c.AfterFunc(func() { close(ran) })
	<-ran
	assert.False(t, stop())
}
