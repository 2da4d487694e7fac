package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"
)

// requestInfo is what a handler tells the request log about its request.
type requestInfo struct {
	orderID string // the correlation ID, once known
	err     string // the error answered, if any
}

type requestInfoKey struct{}

// requestInfoOf returns the request's info, or nil outside logRequests.
func requestInfoOf(r *http.Request) *requestInfo {
	info, _ := r.Context().Value(requestInfoKey{}).(*requestInfo)
	return info
}

// correlate records the order a request is about; its log line carries the
// ID as order_id, the same value as the saga_id of the engine's lines.
func correlate(r *http.Request, orderID string) {
	if info := requestInfoOf(r); info != nil {
		info.orderID = orderID
	}
}

// logRequests logs one line per request once it is answered: method, path,
// status, size, duration, the order ID when there is one, and the error
// answered. Server errors log at Error (503, which asks the client to come
// back, at Warn), the rest at Info.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.cfg.Clock.Now()
		info := &requestInfo{}
		rec := &responseRecorder{ResponseWriter: w}
		defer func() { s.logRequest(r, rec, info, start) }() // also when a handler aborts
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info)))
	})
}

// logRequest writes the line for an answered request.
func (s *server) logRequest(r *http.Request, rec *responseRecorder, info *requestInfo, start time.Time) {
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Int64("bytes", rec.bytes),
		slog.Duration("duration", s.cfg.Clock.Now().Sub(start)),
	}
	if info.orderID != "" {
		attrs = append(attrs, slog.String("order_id", info.orderID))
	}
	if info.err != "" {
		attrs = append(attrs, slog.String("error", info.err))
	}
	level := slog.LevelInfo
	switch {
	case status == http.StatusServiceUnavailable:
		level = slog.LevelWarn
	case status >= 500:
		level = slog.LevelError
	}
	s.log.LogAttrs(r.Context(), level, "http request", attrs...)
}

// responseRecorder notes the status and size of a response. Unwrap lets
// http.ResponseController reach the connection for flushes and deadlines.
type responseRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (rec *responseRecorder) WriteHeader(code int) {
	if rec.status == 0 {
		rec.status = code
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *responseRecorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	n, err := rec.ResponseWriter.Write(b)
	rec.bytes += int64(n)
	return n, err
}

func (rec *responseRecorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

// recoverPanics turns a handler's panic into a 500 answer, logged with its
// stack. If the response had begun, it is aborted instead (the client sees
// a broken response, not a truncated one that looks whole), which net/http
// does quietly for http.ErrAbortHandler.
func recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			switch {
			case v == nil:
				return
			case v == http.ErrAbortHandler:
				panic(v)
			}
			if info := requestInfoOf(r); info != nil {
				info.err = fmt.Sprintf("panic: %v\n%s", v, debug.Stack())
			}
			if rec, ok := w.(*responseRecorder); ok && rec.status != 0 {
				panic(http.ErrAbortHandler)
			}
			writeJSON(w, http.StatusInternalServerError, errorBody{Error: "internal error"})
		}()
		next.ServeHTTP(w, r)
	})
}
