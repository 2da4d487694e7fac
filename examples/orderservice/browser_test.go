package main

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/orderflow"
	"github.com/sagaflow/sagaflow/saga"
)

// The browser test runs only where a Chromium is named, so that go test
// works without one; CI names one and makes a skip a failure.
const (
	chromiumEnv         = "SAGAFLOW_CHROMIUM"          // the Chromium binary, such as /usr/bin/chromium
	requireBrowserEnv   = "SAGAFLOW_REQUIRE_BROWSER"   // 1: fail instead of skipping
	updateScreenshotEnv = "SAGAFLOW_UPDATE_SCREENSHOT" // 1: write dashboard.png beside this file
)

// chromium returns the Chromium to drive, or skips the test (fails it if
// the browser is required).
func chromium(t *testing.T) string {
	t.Helper()
	path := os.Getenv(chromiumEnv)
	why := ""
	if path == "" {
		why = chromiumEnv + " is not set; set it to a Chromium binary (such as /usr/bin/chromium) to run the browser test"
	} else if _, err := os.Stat(path); err != nil {
		why = fmt.Sprintf("%s=%s: %v", chromiumEnv, path, err)
	}
	if why != "" {
		if os.Getenv(requireBrowserEnv) == "1" {
			t.Fatalf("%s=1 but the browser test cannot run: %s", requireBrowserEnv, why)
		}
		t.Skip(why)
	}
	return path
}

// pageLog is what the page did that the test checks afterwards: the
// requests it made, and its errors.
type pageLog struct {
	mu       sync.Mutex
	requests []string
	errors   []string
}

func (l *pageLog) listen(ev any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		l.requests = append(l.requests, ev.Request.URL)
	case *runtime.EventExceptionThrown:
		l.errors = append(l.errors, "exception: "+ev.ExceptionDetails.Text)
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError {
			l.errors = append(l.errors, "console.error")
		}
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.EntryLevelError {
			l.errors = append(l.errors, "log: "+ev.Entry.Text)
		}
	}
}

func TestDashboardInBrowser(t *testing.T) {
	t.Parallel()
	exe := chromium(t)

	// The page lives in real time, so the System runs on the real clock.
	discard := slog.New(slog.DiscardHandler)
	sys, err := orderflow.New(orderflow.Config{Engine: saga.Config{Logger: discard}})
	require.NoError(t, err)
	require.NoError(t, sys.Startup(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = sys.Shutdown(ctx)
	})
	srv := newServer(sys, serverConfig{Logger: discard})
	t.Cleanup(srv.Close)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close) // after the browser has gone, and its streams with it

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1000),
		// Nothing may reach the network but the test server.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
	)
	t.Cleanup(cancelAlloc)
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	require.NoError(t, chromedp.Do(browser), "start Chromium") // the browser lives as long as this context
	var page pageLog
	require.NoError(t, chromedp.Listen(browser, page.listen))

	ctx, cancel := context.WithTimeout(browser, 2*time.Minute)
	defer cancel()
	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx, actions...), what)
	}
	visible := func(selector string) chromedp.Action[chromedp.Void] {
		return chromedp.WaitVisible(chromedp.CSS(selector))
	}
	eval := func(expr string) []string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](expr))
		require.NoError(t, err, expr)
		return v
	}
	// placed waits until the form reports a new order, and returns its ID.
	placed := func(previous string) string {
		t.Helper()
		id, err := chromedp.Run(ctx, chromedp.Poll[string](fmt.Sprintf(
			`(() => { const id = document.getElementById("form-result").dataset.orderId; return id && id !== %q ? id : null })()`, previous)))
		require.NoError(t, err, "the form reports the order")
		return id
	}
	timeline := `Array.from(document.querySelectorAll("#events li"), li => li.dataset.type)`

	do("open the dashboard", chromedp.Navigate(ts.URL),
		visible(`#place-order`),
		visible(`#diagram [data-node="step:payment"]`),
		visible(`#health[data-state="healthy"]`))

	choose := func(id, value string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			return chromedp.Void{}, chromedp.Do(ctx,
				chromedp.SetValue(chromedp.ID(id), value),
				chromedp.Evaluate[chromedp.Void](`document.getElementById(`+fmt.Sprintf("%q", id)+`).dispatchEvent(new Event("change"))`))
		}
	}
	text := func(selector string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(selector)))
		require.NoError(t, err, selector)
		return v
	}

	// A good order: the form's laptop, and two mice added to it.
	do("add an item",
		chromedp.Click(chromedp.ID("add-item")),
		chromedp.SetValue(chromedp.CSS(`#items .item:nth-child(2) .item-qty`), "2"),
		chromedp.SendKeys(chromedp.CSS(`#items .item:nth-child(2) .item-name`), "mouse"),
		chromedp.SendKeys(chromedp.CSS(`#items .item:nth-child(2) .item-price`), "19.99"))
	assert.Equal(t, "1039.97", text(`#form-total`))
	do("place an order", chromedp.Click(chromedp.ID("place-order")))
	first := placed("")
	do("the order completes",
		visible(`#order-list tr[data-order-id="`+first+`"][data-status="completed"]`),
		visible(`#events li.event.forward[data-type="ORDER_COMPLETED"]`),
		visible(`#timeline-status[data-status="completed"]`),
		visible(`#diagram [data-node="completed"].done`))
	completed := []string{"ORDER_CREATED", "ORDER_VALIDATED", "PAYMENT_PROCESSED", "INVENTORY_RESERVED", "ORDER_SHIPPED", "ORDER_COMPLETED"}
	assert.Equal(t, completed, eval(timeline))
	assert.Empty(t, eval(`Array.from(document.querySelectorAll("#events li.compensation, #events li.failed"), li => li.dataset.type)`))
	assert.Equal(t, "1039.97", text(`#order-list tr[data-order-id="`+first+`"] td.num`))

	// An order that no courier takes: refused at shipping, and undone.
	do("ask for a shipping refusal", choose("fail-step", "shipping"), chromedp.Click(chromedp.ID("place-order")))
	second := placed(first)
	do("the order is undone",
		visible(`#events li.compensation[data-type="PAYMENT_REFUNDED"]`),
		visible(`#events li.compensation[data-type="ORDER_CANCELED"]`),
		visible(`#order-list tr[data-order-id="`+second+`"][data-status="failed"]`))
	assert.Equal(t, []string{"ORDER_CREATED", "ORDER_VALIDATED", "PAYMENT_PROCESSED", "INVENTORY_RESERVED", "ORDER_SHIPPED",
		"INVENTORY_RELEASED", "PAYMENT_REFUNDED", "ORDER_CANCELED"}, eval(timeline))
	assert.Equal(t, []string{"ORDER_SHIPPED"}, eval(`Array.from(document.querySelectorAll("#events li.failed"), li => li.dataset.type)`))

	// An order whose payment is unavailable: retried, given up, undone.
	do("ask for a payment failure", choose("fail-step", "payment"), choose("fail-mode", "unavailable"),
		chromedp.Click(chromedp.ID("place-order")))
	third := placed(second)
	failing := func(what string) {
		t.Helper()
		do(what,
			visible(`#events li.forward.failed[data-type="PAYMENT_PROCESSED"]`),
			visible(`#events li.compensation[data-type="PAYMENT_REFUNDED"]`),
			visible(`#events li.compensation[data-type="ORDER_CANCELED"]`),
			visible(`#timeline-status[data-status="failed"]`),
			visible(`#order-list tr[data-order-id="`+third+`"][data-status="failed"]`),
			visible(`#diagram [data-node="step:payment"].failed`),
			visible(`#diagram [data-node="undo:payment"].done`),
			visible(`#diagram [data-node="compensated"].done`))
		assert.Equal(t, []string{"ORDER_CREATED", "ORDER_VALIDATED", "PAYMENT_PROCESSED", "PAYMENT_REFUNDED", "ORDER_CANCELED"}, eval(timeline))
	}
	failing("the compensation appears and the order fails")

	// The list selects an order: its timeline is read back whole.
	do("select the first order", chromedp.Click(chromedp.CSS(`#order-list tr[data-order-id="`+first+`"]`)),
		visible(`#timeline[data-order-id="`+first+`"] #events li[data-type="ORDER_COMPLETED"]`),
		visible(`#timeline-status[data-status="completed"]`))
	assert.Equal(t, completed, eval(timeline))
	assert.Empty(t, eval(`Array.from(document.querySelectorAll("#diagram .node.failed"), n => n.dataset.node)`), "the diagram shows the selected order")
	do("select the third order again", chromedp.Click(chromedp.CSS(`#order-list tr[data-order-id="`+third+`"]`)))
	failing("the failed order is shown again")

	// Forward steps, failures and compensations look different.
	looks := eval(`["li.forward:not(.failed)", "li.forward.failed", "li.compensation"].map(sel => {
		const s = getComputedStyle(document.querySelector("#events " + sel));
		return [s.borderLeftColor, s.backgroundColor, s.marginLeft].join(" ");
	})`)
	require.Len(t, looks, 3)
	assert.NotEqual(t, looks[0], looks[1], "a failed step looks like a good one")
	assert.NotEqual(t, looks[0], looks[2], "a compensation looks like a forward step")
	assert.NotEqual(t, looks[1], looks[2], "a compensation looks like a failure")

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "dashboard.png")
	require.NoError(t, os.WriteFile(path, shot, 0o644))
	img, err := png.Decode(bytes.NewReader(shot))
	require.NoError(t, err, "the screenshot is a PNG")
	assert.GreaterOrEqual(t, img.Bounds().Dx(), 1440)
	assert.GreaterOrEqual(t, img.Bounds().Dy(), 700)
	if os.Getenv(updateScreenshotEnv) == "1" {
		require.NoError(t, os.WriteFile("dashboard.png", shot, 0o644))
		t.Logf("wrote dashboard.png (%d×%d)", img.Bounds().Dx(), img.Bounds().Dy())
	}

	page.mu.Lock()
	defer page.mu.Unlock()
	assert.Empty(t, page.errors, "errors in the page")
	for _, want := range []string{"/", "/assets/app.css", "/assets/app.js", "/saga.svg", "/orders/feed", "/health",
		"/process_order", "/orders/" + first + "/stream", "/process_order?fail_step=shipping&fail_mode=refused",
		"/process_order?fail_step=payment&fail_mode=unavailable"} {
		assert.Contains(t, page.requests, ts.URL+want)
	}
	for _, u := range page.requests {
		assert.True(t, strings.HasPrefix(u, ts.URL+"/") || strings.HasPrefix(u, "data:"), "a request beyond the server: %s", u)
	}
}
