package main

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/orderflow"
)

// serverConfig configures a server. The zero value works.
type serverConfig struct {
	// Logger receives one line per request. Defaults to slog.Default().
	Logger *slog.Logger
	// Clock times requests and the streams' heartbeats. Defaults to
	// clock.Real(). Write deadlines are always on the real clock, since the
	// network keeps real time.
	Clock clock.Clock
	// Heartbeat is how often an idle event stream gets a comment, so that
	// proxies and clients do not take it for dead. Defaults to 15s.
	Heartbeat time.Duration
	// StreamWriteTimeout bounds each write to an event stream: a client
	// that stops reading is dropped after it. Defaults to 10s.
	StreamWriteTimeout time.Duration
	// MaxBodyBytes is the largest request body accepted. Defaults to 1 MiB,
	// which holds any order orderflow accepts.
	MaxBodyBytes int64
	// RecentOrders is how many of the orders placed through this server the
	// dashboard lists. Defaults to 50.
	RecentOrders int
}

func (c serverConfig) withDefaults() serverConfig {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = clock.Real()
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 15 * time.Second
	}
	if c.StreamWriteTimeout <= 0 {
		c.StreamWriteTimeout = 10 * time.Second
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.RecentOrders <= 0 {
		c.RecentOrders = 50
	}
	return c
}

// server is the order service's HTTP handler: the JSON API, the event
// streams and the dashboard, over one orderflow.System. It is safe for
// concurrent use. Close it after the http.Server has shut down and before
// the System does.
type server struct {
	sys     *orderflow.System
	cfg     serverConfig
	log     *slog.Logger
	handler http.Handler
	diagram []byte // the saga as SVG
	recent  *recentOrders

	// ctx ends when the server closes: streams end and fault cleanups stop.
	ctx    context.Context
	cancel context.CancelFunc
	bgMu   sync.Mutex     // keeps bg.Go from racing with Close
	bg     sync.WaitGroup // fault cleanups
}

// newServer returns the handler for sys.
func newServer(sys *orderflow.System, cfg serverConfig) *server {
	cfg = cfg.withDefaults()
	s := &server{
		sys:     sys,
		cfg:     cfg,
		log:     cfg.Logger,
		diagram: sagaSVG(sys.Definition()),
		recent:  newRecentOrders(cfg.RecentOrders),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	mux := http.NewServeMux()
	route := func(method, path string, h http.HandlerFunc) {
		mux.HandleFunc(method+" "+path, h)
		mux.HandleFunc(path, methodNotAllowed(method))
	}
	route(http.MethodPost, "/process_order", s.processOrder)
	route(http.MethodGet, "/orders/{id}/status", s.orderStatus)
	route(http.MethodGet, "/orders/{id}/events", s.orderEvents)
	route(http.MethodGet, "/orders/{id}/stream", s.orderStream)
	route(http.MethodGet, "/orders/feed", s.orderFeed)
	route(http.MethodGet, "/health", s.health)
	route(http.MethodGet, "/saga.svg", s.sagaDiagram)
	route(http.MethodGet, "/{$}", s.dashboard)
	route(http.MethodGet, "/assets/{file}", s.assets)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, http.StatusNotFound, "no route for "+r.Method+" "+r.URL.Path)
	})
	s.handler = s.logRequests(recoverPanics(mux))
	return s
}

// ServeHTTP serves the API and the dashboard.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// closeStreams ends every event stream, so that an http.Server shutting
// down does not wait for them. Register it with RegisterOnShutdown.
func (s *server) closeStreams() { s.cancel() }

// Close ends the streams and waits for the server's own goroutines.
func (s *server) Close() {
	s.bgMu.Lock()
	s.cancel()
	s.bgMu.Unlock()
	s.bg.Wait()
}

// methodNotAllowed answers a request to a known path with the wrong method.
func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if allow == http.MethodGet {
			allow = "GET, HEAD"
		}
		w.Header().Set("Allow", allow)
		writeError(w, r, http.StatusMethodNotAllowed, r.Method+" not allowed on "+r.URL.Path+"; use "+allow)
	}
}

// health reports the System's health: 200 while it serves (healthy or
// degraded), 503 otherwise.
func (s *server) health(w http.ResponseWriter, r *http.Request) {
	h := s.sys.Health(r.Context())
	code := http.StatusOK
	if !h.State.Serving() {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, h)
}

// sagaDiagram serves the saga drawn as SVG.
func (s *server) sagaDiagram(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(s.diagram)
}

// recentOrders remembers the IDs of the latest orders placed, newest last.
type recentOrders struct {
	mu  sync.Mutex
	ids []string
	max int
}

func newRecentOrders(n int) *recentOrders { return &recentOrders{max: n} }

func (o *recentOrders) add(id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.ids) == o.max {
		o.ids = append(o.ids[:0], o.ids[1:]...)
	}
	o.ids = append(o.ids, id)
}

func (o *recentOrders) list() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.ids...)
}
