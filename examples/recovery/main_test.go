package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const childDirEnv = "RECOVERY_CHILD_DIR"

// TestCrashChild is the process that TestCrashThenResume kills.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(childDirEnv)
	if dir == "" {
		t.Skip("runs only as the child of TestCrashThenResume")
	}
	require.NoError(t, run(context.Background(), os.Stdout, dir, 3, true))
	t.Fatal("still alive after crashing")
}

func TestCrashThenResume(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childDirEnv+"="+dir)
	out, err := cmd.Output()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "the child must die, not exit")
	assert.False(t, exit.Exited(), "killed by a signal")
	assert.Contains(t, string(out), "3 orders paid and reserved, waiting at shipping: crashing now")

	var resumed bytes.Buffer
	require.NoError(t, run(context.Background(), &resumed, dir, 1, false))
	assert.Equal(t, "journal in "+dir+`: 3 orders to resume
  order-001 resumed: completed, 1 charge
  order-002 resumed: completed, 1 charge
  order-003 resumed: completed, 1 charge
  order-004 placed: completed
`, resumed.String())
}

func TestRunWithoutCrash(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), &out, dir, 2, false))
	assert.Equal(t, "journal in "+dir+`: 0 orders to resume
  order-001 placed: completed
  order-002 placed: completed
`, out.String())
}
