package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRun(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), &out))
	assert.Equal(t, `saga_started
step_started     validate
step_succeeded   validate
step_started     payment
step_succeeded   payment
step_started     inventory
step_succeeded   inventory
step_started     shipping
step_succeeded   shipping
saga_completed
order-2 mouse     completed
order-3 keyboard  completed
order-4 nowhere   compensated no courier serves this address
order-5 monitor   completed
health: healthy
health: stopped
`, out.String())
}
