package main

import (
	"embed"
	"net/http"
	"path"
)

// The dashboard: one page, its stylesheet and its script, embedded in the
// binary. It needs no build step and makes no request beyond this server,
// which its Content-Security-Policy enforces.
//
//go:embed dashboard/index.html dashboard/app.css dashboard/app.js
var dashboardFiles embed.FS

// contentSecurityPolicy allows the page nothing but this server.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// assetTypes are the dashboard's files under /assets/, with their types.
var assetTypes = map[string]string{
	"app.css": "text/css; charset=utf-8",
	"app.js":  "text/javascript; charset=utf-8",
}

// dashboard is GET /: the page.
func (s *server) dashboard(w http.ResponseWriter, r *http.Request) {
	s.serveFile(w, r, "index.html", "text/html; charset=utf-8")
}

// assets is GET /assets/{file}: the page's stylesheet and script.
func (s *server) assets(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	typ, ok := assetTypes[name]
	if !ok {
		writeError(w, r, http.StatusNotFound, "no asset "+name)
		return
	}
	s.serveFile(w, r, name, typ)
}

func (s *server) serveFile(w http.ResponseWriter, r *http.Request, name, typ string) {
	data, err := dashboardFiles.ReadFile(path.Join("dashboard", name))
	if err != nil { // the embed directive lists every file served
		s.internalError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", typ)
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	_, _ = w.Write(data)
}
