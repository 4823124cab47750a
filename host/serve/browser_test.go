package serve

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser starts headless Chromium for a test, or skips it when there is
// none — except under CI=true, where a missing browser fails the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("BLOCKHOST_CHROMIUM")
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if path != "" {
			break
		}
		path, _ = exec.LookPath(name)
	}
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("no Chromium to drive: install Debian's chromium package (.ci/run does)")
		}
		t.Skip("no Chromium found (apt-get install chromium, or set BLOCKHOST_CHROMIUM); skipping the browser test")
	}
	// The flags keep Chromium off the network: only the loopback page is
	// fetched, and nothing runs in the background.
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	// The first call starts the browser and binds its life to ctx, so it
	// gets no timeout of its own; every later step does (see step).
	if err := chromedp.Do(ctx); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot start Chromium at %s: %v", path, err)
		}
		t.Skipf("cannot start Chromium at %s: %v; skipping the browser test", path, err)
	}
	return ctx
}

// step runs browser actions under a hang-catching timeout.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestBrowser_approve opens the status page in a real browser, sees a
// submitted approval appear, approves it with a comment and sees the
// step finish as success — all through the page's own script.
func TestBrowser_approve(t *testing.T) {
	ctx := browser(t)
	h := start(t, testConfig(t, t.TempDir(), nil).WithInsecureLocal(true))
	step(t, ctx, "open the page", chromedp.Navigate(h.ts.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#live")))

	id := h.submit("", approvalInput(120_000, "local"))
	row, button := "#row-"+id+" .status", "#approve-"+id
	// The page refreshes itself: the step appears without a reload.
	step(t, ctx, "the submitted step appears", chromedp.WaitVisible(chromedp.CSS(button)))
	status, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(row)))
	if err != nil || status != "waiting" {
		t.Fatalf("the submitted step shows as %q, want waiting (%v)", status, err)
	}
	step(t, ctx, "approve",
		chromedp.SendKeys(chromedp.CSS("#approval-"+id+" input[name=comment]"), "ship it"),
		chromedp.Click(chromedp.CSS(button)))
	pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if _, err := chromedp.Run(pctx, chromedp.Poll[bool](`document.querySelector(`+jsString(row)+`)?.textContent === "success"`,
		chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Fatalf("after Approve the step did not show success: %v", err)
	}
	v := h.step("", id)
	out := v["result"].(map[string]any)["output"].(map[string]any)
	if out["approved"] != true || out["approver"] != "local" || out["comment"] != "ship it" {
		t.Fatalf("output: %v", out)
	}
	gone, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector(`+jsString(button)+`) === null`))
	if err != nil || !gone {
		t.Fatalf("the decided approval is still offered (%v)", err)
	}
}

func jsString(s string) string { return `"` + s + `"` }
