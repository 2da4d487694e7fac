package main

import (
	"io/fs"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDashboardFiles(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, tc := range []struct {
		path, contentType, contains string
	}{
		{"/", "text/html; charset=utf-8", `<script src="/assets/app.js" defer></script>`},
		{"/assets/app.js", "text/javascript; charset=utf-8", `new EventSource("/orders/feed")`},
		{"/assets/app.css", "text/css; charset=utf-8", `.event.compensation`},
	} {
		w := f.do(http.MethodGet, tc.path, "")
		require.Equal(t, http.StatusOK, w.Code, tc.path)
		assert.Equal(t, tc.contentType, w.Header().Get("Content-Type"), tc.path)
		assert.Equal(t, contentSecurityPolicy, w.Header().Get("Content-Security-Policy"), tc.path)
		assert.Equal(t, "nosniff", w.Header().Get("X-Content-Type-Options"), tc.path)
		assert.Contains(t, w.Body.String(), tc.contains, tc.path)
	}

	w := f.do(http.MethodGet, "/saga.svg", "")
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, "image/svg+xml", w.Header().Get("Content-Type"))
	assert.Equal(t, string(sagaSVG(f.sys.Definition())), w.Body.String())
}

// TestDashboardIsSelfContained checks the embedded files: every reference
// in the page is to this server, and no file names another host. (The
// browser test checks the requests the page really makes.)
func TestDashboardIsSelfContained(t *testing.T) {
	t.Parallel()
	page, err := dashboardFiles.ReadFile("dashboard/index.html")
	require.NoError(t, err)
	refs := regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(string(page), -1)
	require.Len(t, refs, 3)
	for _, ref := range refs {
		assert.True(t, strings.HasPrefix(ref[1], "/assets/") || ref[1] == "data:,", "reference %q", ref[1])
	}

	otherHost := regexp.MustCompile(`(?i)\b(?:https?:|wss?:)?//[a-z0-9-]+\.[a-z0-9.-]+|@import|url\(`)
	require.NoError(t, fs.WalkDir(dashboardFiles, "dashboard", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := dashboardFiles.ReadFile(path)
		require.NoError(t, err)
		assert.Empty(t, otherHost.FindAllString(string(data), -1), "%s refers to another host", path)
		return nil
	}))
}
