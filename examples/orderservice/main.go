// Orderservice serves orderflow, sagaflow's order saga, over HTTP, with a
// live dashboard:
//
//	go run ./examples/orderservice                     # http://127.0.0.1:8080
//	go run ./examples/orderservice -store journal -dir /var/lib/orders
//
// The API:
//
//	POST /process_order          place an order (Idempotency-Key header optional)
//	GET  /orders/{id}/status     an order's status
//	GET  /orders/{id}/events     its events
//	GET  /orders/{id}/stream     its events live, as Server-Sent Events
//	GET  /orders/feed            every order's status changes, as Server-Sent Events
//	GET  /health                 the System's health: 200 while serving, else 503
//	GET  /saga.svg               the saga, drawn from its definition
//	GET  /                       the dashboard
//
// Errors are JSON, {"success": false, "error": "..."}. Every request is
// logged through slog, with the order's ID as order_id. SIGINT or SIGTERM
// shuts it down gracefully: it stops accepting connections, ends the event
// streams, finishes the requests in progress, and then shuts the System
// down, which with the memory store waits for the orders in flight.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/orderflow"
	"github.com/sagaflow/sagaflow/saga"
)

func main() { os.Exit(serve(os.Args[1:], os.Stdout, os.Stderr)) }

// serve runs the service until SIGINT or SIGTERM, and returns the exit
// code.
func serve(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, args, stdout, stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "orderservice:", err)
		}
		return 1
	}
	return 0
}

// The HTTP server's timeouts. The event streams replace the write deadline
// of the whole response with one for each write.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
)

// options are the command line.
type options struct {
	addr            string
	store           string
	dir             string
	shutdownTimeout time.Duration
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("orderservice", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "address to listen on")
	fs.StringVar(&o.store, "store", "memory", "where orders are kept: memory, or journal (on disk, survives restarts)")
	fs.StringVar(&o.dir, "dir", "", "directory of the journal, with -store journal (default $TMPDIR/sagaflow-orderservice)")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long a graceful shutdown may take")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case o.store != "memory" && o.store != "journal":
		return o, fmt.Errorf("-store must be memory or journal, not %q", o.store)
	case o.store == "memory" && o.dir != "":
		return o, errors.New("-dir needs -store journal")
	case o.shutdownTimeout <= 0:
		return o, errors.New("-shutdown-timeout must be positive")
	}
	if o.store == "journal" && o.dir == "" {
		o.dir = filepath.Join(os.TempDir(), "sagaflow-orderservice")
	}
	return o, nil
}

// run serves until ctx ends, then shuts down gracefully. It prints the
// address it serves on to stdout, and logs to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	sys, err := orderflow.New(orderflow.Config{Dir: o.dir, Engine: saga.Config{Logger: logger}})
	if err != nil {
		return err
	}
	// Whatever happens, the System shuts down last, within the grace
	// period, once the signal has come.
	shutdownCtx := func() (context.Context, context.CancelFunc) {
		return clock.WithTimeout(context.WithoutCancel(ctx), clock.Real(), o.shutdownTimeout)
	}
	defer func() {
		sctx, cancel := shutdownCtx()
		defer cancel()
		if serr := sys.Shutdown(sctx); serr != nil {
			err = errors.Join(err, fmt.Errorf("shut down orders: %w", serr))
		}
	}()
	if err := sys.Startup(ctx); err != nil {
		return err
	}

	srv := newServer(sys, serverConfig{Logger: logger})
	defer srv.Close()
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	hs.RegisterOnShutdown(srv.closeStreams)
	// Shutdown runs this once it refuses new connections, and a response
	// written after it closes its connection: the line then says that both
	// hold for the requests still in progress.
	shutting := make(chan struct{})
	hs.RegisterOnShutdown(func() {
		logger.Info("shutting down: no new connections; finishing requests in progress")
		close(shutting)
	})
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	store := "memory"
	if o.dir != "" {
		store = "journal in " + o.dir
	}
	fmt.Fprintf(stdout, "orderservice: serving on http://%s (store: %s)\n", ln.Addr(), store)

	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	sctx, cancel := shutdownCtx()
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		<-served
		_ = hs.Close() // drop the connections that did not finish in time
		return fmt.Errorf("shut down HTTP server: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	<-shutting // its line comes before the next
	srv.Close()
	logger.Info("HTTP server stopped; shutting down the orders")
	return nil
}
