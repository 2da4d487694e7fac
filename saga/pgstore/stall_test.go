package pgstore_test

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/pgstore"
	"github.com/sagaflow/sagaflow/saga/sagatest"
)

// stallProxy forwards connections to the database until stall is called;
// from then on it drops what either side sends, as a network that has
// stopped answering, and tells held when it drops what a client sent.
type stallProxy struct {
	ln      net.Listener
	target  string
	held    chan struct{}
	mu      sync.Mutex
	stalled bool
	conns   []net.Conn
	wg      sync.WaitGroup
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &stallProxy{ln: ln, target: target, held: make(chan struct{}, 1)}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *stallProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(server, client, true) })
		p.wg.Go(func() { p.pipe(client, server, false) })
	}
}

// pipe copies from src to dst until either closes, dropping what comes
// while the proxy is stalled.
func (p *stallProxy) pipe(dst, src net.Conn, fromClient bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			dst.Close()
			return
		}
		p.mu.Lock()
		stalled := p.stalled
		p.mu.Unlock()
		if stalled {
			if fromClient {
				select {
				case p.held <- struct{}{}:
				default:
				}
			}
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			src.Close()
			return
		}
	}
}

func (p *stallProxy) stall() {
	p.mu.Lock()
	p.stalled = true
	p.mu.Unlock()
}

func (p *stallProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// within fails t unless a value arrives on c within sagatest.WaitTimeout.
func within[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(sagatest.WaitTimeout)
	defer timer.Stop()
	select {
	case v := <-c:
		return v
	case <-timer.C:
		t.Fatalf("%s: nothing after %v", what, sagatest.WaitTimeout)
		var zero T
		return zero
	}
}

// TestAppendAndCloseReturnWhileTheDatabaseStalls stops the network between
// the store and the database in the middle of an append: the append must
// return when its context ends, and Close within the lease's TTL, rather
// than wait for a database that does not answer, failing the appends it
// finds in flight.
func TestAppendAndCloseReturnWhileTheDatabaseStalls(t *testing.T) {
	direct := database(t)
	schema := newSchema(t, direct)
	u, err := url.Parse(os.Getenv(urlVar))
	require.NoError(t, err)
	p := newStallProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	db, err := sql.Open("pgx", u.String())
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })

	const ttl = time.Second // real time: Close gives up handing back after it
	s, err := pgstore.Open(t.Context(), db, pgstore.Options{Schema: schema, LeaseTTL: ttl, Clock: newFakeClock()})
	require.NoError(t, err)
	for _, id := range []string{"o1", "o2"} {
		created := []saga.Event{{SagaID: id, Run: "r1", Seq: 1, Type: saga.EventSagaStarted, Definition: "orders", State: []byte(`{}`)}}
		require.NoError(t, s.Create(t.Context(), created))
	}
	next := func(id string) []saga.Event {
		return []saga.Event{{SagaID: id, Run: "r1", Seq: 2, Type: saga.EventStepStarted, Step: "a", Attempt: 1}}
	}

	p.stall()
	ctx, cancel := context.WithCancel(t.Context())
	appended := make(chan error, 1)
	go func() { appended <- s.Append(ctx, "o1", 1, next("o1")) }()
	within(t, p.held, "the append's statement on its way")
	cancel()
	assert.ErrorIs(t, within(t, appended, "Append after its context ended"), context.Canceled)

	// An append whose context does not end is in flight when Close comes.
	inFlight := make(chan error, 1)
	go func() { inFlight <- s.Append(context.Background(), "o2", 1, next("o2")) }()
	within(t, p.held, "the second append's statement on its way")
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	err = within(t, closed, "Close with the database stalled")
	assert.Error(t, err, "it could not hand back what it owns")
	assert.False(t, errors.Is(err, saga.ErrClosed))
	assert.Error(t, within(t, inFlight, "the append in flight after Close"), "Close ended it")
}
