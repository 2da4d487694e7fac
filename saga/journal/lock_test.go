package journal_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga/journal"
)

// One journal at a time per directory, in this process or another.

func TestLockInProcess(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := open(t, dir, journal.Options{})

	_, err := journal.Open(dir, journal.Options{Logger: quiet})
	require.ErrorIs(t, err, journal.ErrLocked)
	assert.Contains(t, err.Error(), dir)
	require.NoError(t, first.Ping(t.Context()), "the holder is not disturbed")

	require.NoError(t, first.Close())
	second := open(t, dir, journal.Options{})
	require.NoError(t, second.Ping(t.Context()))
	_, err = journal.Open(dir, journal.Options{Logger: quiet})
	require.ErrorIs(t, err, journal.ErrLocked, "the second holder locks too")
}

// lockHelperEnv names the directory TestLockHelperProcess opens when the
// test binary runs as a child of TestLockOtherProcess.
const lockHelperEnv = "JOURNAL_LOCK_HELPER_DIR"

// TestLockHelperProcess is not a test: it is what the child process of
// TestLockOtherProcess runs. It opens the directory and prints the
// outcome on a line starting with "helper:".
func TestLockHelperProcess(t *testing.T) {
	dir := os.Getenv(lockHelperEnv)
	if dir == "" {
		t.Skip("runs only as the child of TestLockOtherProcess")
	}
	j, err := journal.Open(dir, journal.Options{Logger: quiet})
	switch {
	case errors.Is(err, journal.ErrLocked):
		fmt.Println("helper: locked")
	case err != nil:
		fmt.Println("helper: error:", err)
	default:
		fmt.Println("helper: opened")
		_ = j.Close()
	}
}

// openInChild runs TestLockHelperProcess in a child process on dir and
// returns what it printed.
func openInChild(t *testing.T, dir string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestLockHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "child: %s", stderr.String())
	for line := range strings.Lines(string(out)) {
		if s, ok := strings.CutPrefix(line, "helper: "); ok {
			return strings.TrimSpace(s)
		}
	}
	require.FailNow(t, "the child printed no outcome", "stdout:\n%s\nstderr:\n%s", out, stderr.String())
	return ""
}

// TestLockOtherProcess is not parallel: between fork and exec a child
// holds a copy of every descriptor of this process, LOCK files of other
// tests' journals included, and flock locks belong to the open file, not
// to the descriptor. A parallel test that closed a journal and reopened it
// at that moment would find the directory still locked.
func TestLockOtherProcess(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, journal.Options{})
	assert.Equal(t, "locked", openInChild(t, dir), "while this process holds the directory")
	require.NoError(t, j.Close())
	assert.Equal(t, "opened", openInChild(t, dir), "once this process has closed it")
}
