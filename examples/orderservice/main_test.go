package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sagaflow/sagaflow/saga/sagatest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want options
	}{
		{nil, options{addr: "127.0.0.1:8080", store: "memory", shutdownTimeout: 30 * time.Second}},
		{[]string{"-addr", ":9000", "-shutdown-timeout", "5s"}, options{addr: ":9000", store: "memory", shutdownTimeout: 5 * time.Second}},
		{[]string{"-store", "journal"}, options{addr: "127.0.0.1:8080", store: "journal",
			dir: filepath.Join(os.TempDir(), "sagaflow-orderservice"), shutdownTimeout: 30 * time.Second}},
		{[]string{"-store", "journal", "-dir", "/var/lib/orders"}, options{addr: "127.0.0.1:8080", store: "journal",
			dir: "/var/lib/orders", shutdownTimeout: 30 * time.Second}},
	} {
		o, err := parse(tc.args, io.Discard)
		require.NoError(t, err, "%q", tc.args)
		assert.Equal(t, tc.want, o, "%q", tc.args)
	}
}

func TestRunRejects(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"-store", "disk"}, `-store must be memory or journal, not "disk"`},
		{[]string{"-dir", "/tmp/orders"}, "-dir needs -store journal"},
		{[]string{"-shutdown-timeout", "0s"}, "-shutdown-timeout must be positive"},
		{[]string{"serve"}, "unexpected arguments: [serve]"},
		{[]string{"-port", "80"}, "flag provided but not defined: -port"},
		{[]string{"-addr", busy.Addr().String()}, "listen tcp " + busy.Addr().String() + ": bind: address already in use"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tc.args, &stdout, &stderr)
		assert.EqualError(t, err, tc.err, "%q", tc.args)
		assert.Empty(t, stdout.String(), "%q", tc.args)
	}
	var stderr bytes.Buffer
	assert.ErrorIs(t, run(context.Background(), []string{"-h"}, io.Discard, &stderr), flag.ErrHelp)
	assert.Contains(t, stderr.String(), "-store string")
	assert.Equal(t, 1, serve([]string{"-store", "disk"}, io.Discard, &stderr))
	assert.Contains(t, stderr.String(), `orderservice: -store must be memory or journal, not "disk"`+"\n")
}

// watcher is an io.Writer that a test can wait on for a line.
type watcher struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newWatcher() *watcher { return &watcher{changed: make(chan struct{})} }

func (w *watcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.changed)
	w.changed = make(chan struct{})
	return w.buf.Write(p)
}

func (w *watcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitFor waits until a whole line written contains s, and returns it.
func (w *watcher) waitFor(t *testing.T, s string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sagatest.WaitTimeout)
	defer cancel()
	line, err := w.wait(ctx, s)
	if err != nil {
		t.Fatalf("no line with %q in:\n%s", s, w.String())
	}
	return line
}

// wait waits until a whole line written contains s, and returns it, or
// ctx's error.
func (w *watcher) wait(ctx context.Context, s string) (string, error) {
	for {
		w.mu.Lock()
		for _, line := range strings.SplitAfter(w.buf.String(), "\n") {
			if strings.HasSuffix(line, "\n") && strings.Contains(line, s) {
				w.mu.Unlock()
				return line, nil
			}
		}
		changed := w.changed
		w.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// waitLines returns the lines that contain every one of substrings once
// there are n of them, or those there are after sagatest.WaitTimeout: the
// engine logs some lines after an order's status has changed.
func (w *watcher) waitLines(n int, substrings ...string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), sagatest.WaitTimeout)
	defer cancel()
	for {
		w.mu.Lock()
		changed := w.changed
		w.mu.Unlock()
		if lines := w.lines(substrings...); len(lines) >= n {
			return lines
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return w.lines(substrings...)
		}
	}
}

// lines returns the lines that contain every one of substrings.
func (w *watcher) lines(substrings ...string) []string {
	var out []string
	for _, l := range strings.Split(w.String(), "\n") {
		ok := l != ""
		for _, s := range substrings {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// service is run in a goroutine of the test.
type service struct {
	t              *testing.T
	addr           string // host:port
	stdout, stderr *watcher
	client         *http.Client
	cancel         context.CancelFunc
	done           chan error
}

// startRun runs the program with args, plus an -addr on a free port, and
// waits until it serves.
func startRun(t *testing.T, args ...string) *service {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	transport := &http.Transport{}
	s := &service{t: t, stdout: newWatcher(), stderr: newWatcher(), client: &http.Client{Transport: transport},
		cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), s.stdout, s.stderr) }()
	t.Cleanup(func() {
		cancel()
		<-s.done
		transport.CloseIdleConnections()
	})
	waitCtx, stopWaiting := context.WithTimeout(context.Background(), sagatest.WaitTimeout)
	defer stopWaiting()
	go func() {
		select { // run returned: stop waiting for it to serve
		case err := <-s.done:
			s.done <- err
			stopWaiting()
		case <-waitCtx.Done():
		}
	}()
	line, err := s.stdout.wait(waitCtx, "serving on http://")
	if err != nil {
		select {
		case err = <-s.done:
			s.done <- err
		default:
		}
		t.Fatalf("run did not serve: %v\nstderr:\n%s", err, s.stderr)
	}
	s.addr = strings.Fields(strings.TrimPrefix(line, "orderservice: serving on http://"))[0]
	return s
}

// stop signals the program to stop and returns what run returned.
func (s *service) stop() error {
	s.t.Helper()
	s.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), sagatest.WaitTimeout)
	defer cancel()
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup
		return err
	case <-ctx.Done():
		s.t.Fatal("run did not return after its context ended")
		return nil
	}
}

// request sends a request and returns the status and body.
func (s *service) request(method, path, body string, header ...string) (int, string) {
	s.t.Helper()
	req, err := http.NewRequest(method, "http://"+s.addr+path, strings.NewReader(body))
	require.NoError(s.t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := s.client.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	return resp.StatusCode, string(b)
}

func TestRun(t *testing.T) {
	t.Parallel()
	s := startRun(t)
	assert.Equal(t, "orderservice: serving on http://"+s.addr+" (store: memory)\n", s.stdout.String())

	code, body := s.request(http.MethodPost, "/process_order", orderJSON, "Idempotency-Key", "run-1")
	require.Equal(t, http.StatusAccepted, code, body)
	id, _ := jsonOf(t, []byte(body))["order_id"].(string)
	code, body = s.request(http.MethodGet, "/orders/"+id+"/stream", "") // returns once the order has settled
	require.Equal(t, http.StatusOK, code)
	assert.True(t, strings.HasSuffix(body, "event: end\ndata: {\"order_id\":\""+id+"\",\"status\":\"completed\"}\n\n"), body)
	code, body = s.request(http.MethodGet, "/health", "")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `"state":"healthy"`)
	code, body = s.request(http.MethodGet, "/", "")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "<title>Orders · sagaflow</title>")

	require.NoError(t, s.stop())
	s.stderr.waitFor(t, `level=INFO msg="http request" method=POST path=/process_order status=202`)
	s.stderr.waitFor(t, `msg="shutting down: no new connections; finishing requests in progress"`)
	s.stderr.waitFor(t, `msg="HTTP server stopped; shutting down the orders"`)
	_, err := net.Dial("tcp", s.addr)
	assert.Error(t, err, "still listening after run returned")
}

func TestRunFinishesRequestInProgress(t *testing.T) {
	t.Parallel()
	s := startRun(t)
	conn, err := net.Dial("tcp", s.addr)
	require.NoError(t, err)
	defer conn.Close()
	// With Expect: 100-continue the server says when the handler has begun
	// reading the body: the request is then in progress.
	fmt.Fprintf(conn, "POST /process_order HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"+
		"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n", s.addr, len(orderJSON))
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusContinue, resp.StatusCode)

	stopped := make(chan error, 1)
	go func() { stopped <- s.stop() }()
	s.stderr.waitFor(t, "shutting down: no new connections")
	if late, err := net.Dial("tcp", s.addr); !assert.Error(t, err, "a new connection, after the line") {
		late.Close()
	}
	_, err = io.WriteString(conn, orderJSON) // the body, after the signal
	require.NoError(t, err)
	resp, err = http.ReadResponse(r, nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusAccepted, resp.StatusCode, "the request in progress is served")
	assert.True(t, resp.Close, "and its connection closed")
	require.NoError(t, <-stopped)
}

// TestRunJournal is not parallel: it reopens a journal, whose lock a
// process forked meanwhile by a parallel test (TestSignals, the browser
// test) holds for a moment, between its fork and its exec.
func TestRunJournal(t *testing.T) {
	dir := t.TempDir()
	s := startRun(t, "-store", "journal", "-dir", dir)
	assert.Equal(t, "orderservice: serving on http://"+s.addr+" (store: journal in "+dir+")\n", s.stdout.String())
	code, body := s.request(http.MethodPost, "/process_order", orderJSON, "Idempotency-Key", "kept")
	require.Equal(t, http.StatusAccepted, code, body)
	id, _ := jsonOf(t, []byte(body))["order_id"].(string)
	code, _ = s.request(http.MethodGet, "/orders/"+id+"/stream", "")
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, s.stop())

	// The next run has the order, and knows the key.
	s = startRun(t, "-store", "journal", "-dir", dir)
	code, body = s.request(http.MethodGet, "/orders/"+id+"/status", "")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `"status":"completed"`)
	code, body = s.request(http.MethodPost, "/process_order", orderJSON, "Idempotency-Key", "kept")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `"order_id":"`+id+`"`)
	require.NoError(t, s.stop())
}

const signalChildEnv = "ORDERSERVICE_SIGNAL_CHILD"

// TestSignalChild is the process that TestSignals signals.
func TestSignalChild(t *testing.T) {
	if os.Getenv(signalChildEnv) == "" {
		t.Skip("runs only as the child of TestSignals")
	}
	if code := serve([]string{"-addr", "127.0.0.1:0"}, os.Stdout, os.Stderr); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

func TestSignals(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestSignalChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), signalChildEnv+"=1")
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			stderr := newWatcher()
			cmd.Stderr = stderr
			require.NoError(t, cmd.Start())
			t.Cleanup(func() { _ = cmd.Process.Kill() })

			lines := bufio.NewScanner(stdout)
			require.True(t, lines.Scan(), "the child prints where it serves")
			addr, ok := strings.CutPrefix(lines.Text(), "orderservice: serving on http://")
			require.True(t, ok, lines.Text())
			addr = strings.Fields(addr)[0]
			transport := &http.Transport{}
			defer transport.CloseIdleConnections()
			resp, err := (&http.Client{Transport: transport}).Post("http://"+addr+"/process_order", "application/json", strings.NewReader(orderJSON))
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, http.StatusAccepted, resp.StatusCode)

			require.NoError(t, cmd.Process.Signal(sig))
			rest, err := io.ReadAll(stdout)
			require.NoError(t, err)
			err = cmd.Wait()
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				t.Fatalf("the child failed: %v\nstdout:\n%s\nstderr:\n%s", err, rest, stderr)
			}
			require.NoError(t, err)
			assert.Contains(t, string(rest), "PASS")
			assert.Contains(t, stderr.String(), `msg="shutting down: no new connections; finishing requests in progress"`)
			assert.Contains(t, stderr.String(), `msg="HTTP server stopped; shutting down the orders"`)
		})
	}
}
