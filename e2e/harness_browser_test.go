package e2e

// Headless Chromium (Debian's chromium package) driven through chromedp,
// and the chat page of examples/chat in its tabs.

import (
	"bytes"
	"context"
	"os/exec"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// lockedBuffer keeps the browser's output, written from chromedp's
// goroutine, for the log of a failed test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// chromiumPath finds Debian's chromium. A missing Chromium fails the test:
// a skipped browser test would look like a passing one.
func chromiumPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("Chromium is missing, and the browser test needs it: install Debian's chromium package (apt-get install chromium; .ci/run does it): %v", err)
	}
	return path
}

// startBrowser starts headless Chromium with a fresh profile (chromedp makes
// a temporary --user-data-dir and removes it) and returns the context of its
// first tab. chromedp's defaults give --headless, --no-first-run,
// --disable-background-networking and --disable-sync; with
// --disable-component-update nothing in the background tries to reach the
// network, which the test machine does not have.
func startBrowser(t *testing.T, path string) context.Context {
	t.Helper()
	out := &lockedBuffer{}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests run as root in CI, where the sandbox cannot start
		chromedp.DisableGPU,
		chromedp.Flag("disable-component-update", true),
		chromedp.CombinedOutput(out),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc() // waits for the browser to exit
		if t.Failed() {
			t.Logf("chromium output:\n%s", tail(out.String(), 8000))
		}
	})
	// Start it now, so that a browser that cannot start says so here. The
	// first Run on a context ties the browser's life to the context it is
	// given, so this one takes ctx itself, not one with a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v\n%s", path, err, tail(out.String(), 4000))
	}
	return ctx
}
