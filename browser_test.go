package redisws

// The chat page of examples/chat in a real browser: headless Chromium
// (Debian's chromium package) driven through chromedp, against two nodes of
// the cluster example.

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
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

// chatPage is one tab with the chat page.
type chatPage struct {
	name string
	ctx  context.Context

	mu         sync.Mutex
	exceptions []string // uncaught JavaScript exceptions of the page
}

// openChat opens url in a new tab of the browser and records the page's
// uncaught exceptions.
func openChat(t *testing.T, browser context.Context, name, url string) *chatPage {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	p := &chatPage{name: name, ctx: ctx}
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown) // before the page loads
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ev, err := range exceptions { // ends when the tab's context does
			if err != nil {
				return
			}
			d := ev.ExceptionDetails
			text := d.Text
			if d.Exception != nil {
				text += " " + d.Exception.Description
			}
			p.mu.Lock()
			p.exceptions = append(p.exceptions, fmt.Sprintf("%s (line %d)", text, d.LineNumber+1))
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel() // closes the tab
		wg.Wait()
	})
	p.do(t, chromedp.Navigate(url))
	return p
}

func (p *chatPage) do(t *testing.T, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, exampleWait)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
}

func pageEval[T any](t *testing.T, p *chatPage, expression string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, exampleWait)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expression))
	if err != nil {
		t.Fatalf("%s: evaluating %s: %v", p.name, expression, err)
	}
	return v
}

// status returns the state of the connection indicator (connecting, open,
// closed) and its text.
func (p *chatPage) status(t *testing.T) (state, text string) {
	t.Helper()
	s := pageEval[[]string](t, p, `[document.getElementById("status").dataset.state, document.getElementById("status").textContent]`)
	return s[0], s[1]
}

func (p *chatPage) waitState(t *testing.T, state string) {
	t.Helper()
	waitForPage(t, p.name+": status "+state, func() (bool, string) {
		got, text := p.status(t)
		return got == state, fmt.Sprintf("%s %q", got, text)
	})
}

// waitForPage is eventually for the page: cond says whether it holds and
// what it saw, which the failure message shows.
func waitForPage(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(exampleWait)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last seen: %s", what, exampleWait, seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// messages returns the texts shown in the message list, in order.
func (p *chatPage) messages(t *testing.T) []string {
	t.Helper()
	return pageEval[[]string](t, p, `Array.from(document.querySelectorAll("#messages .text"), e => e.textContent)`)
}

func (p *chatPage) waitMessages(t *testing.T, want ...string) {
	t.Helper()
	waitForPage(t, fmt.Sprintf("%s: messages %q", p.name, want), func() (bool, string) {
		got := p.messages(t)
		return slices.Equal(got, want), fmt.Sprintf("%q", got)
	})
}

// send types text in the box and presses the button, as a person would.
func (p *chatPage) send(t *testing.T, text string) {
	t.Helper()
	p.do(t, chromedp.SendKeys(chromedp.ID("text"), text), chromedp.Click(chromedp.CSS("#send button")))
}

func (p *chatPage) checkNoExceptions(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.exceptions) > 0 {
		t.Errorf("%s: uncaught JavaScript exceptions: %q", p.name, p.exceptions)
	}
}

// saveScreenshot saves what the pages show, side by side, as a PNG and logs
// where. The file is in the temporary directory and stays after the test
// for a reviewer; CHAT_SCREENSHOT names another file
// (CHAT_SCREENSHOT=docs/chat.png refreshes the README's picture).
func saveScreenshot(t *testing.T, pages ...*chatPage) {
	t.Helper()
	const gap = 12 // pixels between two pages
	var shots []image.Image
	width, height := -gap, 0
	for _, p := range pages {
		ctx, cancel := context.WithTimeout(p.ctx, exampleWait)
		data, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		cancel()
		if err != nil {
			t.Fatalf("%s: screenshot: %v", p.name, err)
		}
		shot, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: screenshot: %v", p.name, err)
		}
		shots = append(shots, shot)
		width += shot.Bounds().Dx() + gap
		height = max(height, shot.Bounds().Dy())
	}
	all := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(all, all.Bounds(), image.NewUniform(color.RGBA{0xc8, 0xc8, 0xc8, 0xff}), image.Point{}, draw.Src)
	x := 0
	for _, shot := range shots {
		b := shot.Bounds()
		draw.Draw(all, image.Rect(x, 0, x+b.Dx(), b.Dy()), shot, b.Min, draw.Src)
		x += b.Dx() + gap
	}
	var out bytes.Buffer
	if err := png.Encode(&out, all); err != nil {
		t.Fatal(err)
	}
	file := os.Getenv("CHAT_SCREENSHOT")
	if file == "" {
		file = filepath.Join(os.TempDir(), fmt.Sprintf("redisws-chat-%s.png", time.Now().Format("20060102-150405")))
	}
	if err := os.WriteFile(file, out.Bytes(), 0o644); err != nil {
		t.Fatalf("writing the screenshot: %v", err)
	}
	abs, _ := filepath.Abs(file)
	t.Logf("screenshot of the two pages: %s", abs)
}

// Two chat pages on two different nodes exchange messages both ways, a
// message published with redis-cli shows up in both, message text is never
// taken for markup, and a page whose node stops reconnects by itself, with
// growing delays, when the node is back. A third page, opened through the
// load balancer of the cluster example as run.sh serves it, takes part too:
// the browser's Origin is the balancer's address and redis_ws's default
// origin check accepts it, because the balancer passes the Host header on.
func TestChatBrowser(t *testing.T) {
	chromium := chromiumPath(t)
	rs := startRedis(t)
	node1 := startExampleNode(t, "node1", rs, nil)
	node2 := startExampleNode(t, "node2", rs, nil)
	lb := startExampleBalancer(t, node1, node2)
	browser := startBrowser(t, chromium)

	page1 := openChat(t, browser, "page on node 1", node1.URL("/"))
	page2 := openChat(t, browser, "page on node 2", node2.URL("/"))
	page3 := openChat(t, browser, "page through the balancer", lb.URL("/"))
	pages := []*chatPage{page1, page2, page3}
	for _, p := range pages {
		p.do(t, chromedp.EmulateViewport(520, 400)) // the size of the README's picture
		p.waitState(t, "open")
	}
	waitAll := func(want ...string) {
		t.Helper()
		for _, p := range pages {
			p.waitMessages(t, want...)
		}
	}

	// Each page shows what arrives through Redis, its own messages included.
	page1.send(t, "Hello from a page on node 1")
	waitAll("Hello from a page on node 1")
	page2.send(t, "Hi! This page is on node 2")
	want := []string{"Hello from a page on node 1", "Hi! This page is on node 2"}
	waitAll(want...)

	out, err := exec.Command("redis-cli", "-p", strconv.Itoa(rs.Port), "publish", "chat", "Published with redis-cli").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "2" { // one subscriber per node
		t.Fatalf("redis-cli publish: %v, output %q (want 2 receivers)", err, out)
	}
	want = append(want, "Published with redis-cli")
	waitAll(want...)
	saveScreenshot(t, page1, page2)

	// Text, never markup: the page shows the characters and makes no element.
	page3.send(t, "<b>not bold</b>")
	want = append(want, "<b>not bold</b>")
	waitAll(want...)
	if pageEval[bool](t, page1, `document.querySelector("#messages b") !== null`) {
		t.Fatalf("a message became markup")
	}

	// Node 2 stops (SIGTERM: it closes its connections with 1001 and
	// exits, while the test watches): its page says so and retries,
	// waiting longer each time. The delay it shows is between half and all
	// of 0.5 s, 1 s, 2 s … 10 s, so each is at least the one before. The
	// page through the balancer, if it was on node 2, is back on node 1
	// meanwhile.
	node2.Signal(t, syscall.SIGTERM)
	var delays []float64
	waitForPage(t, "page on node 2: three reconnect attempts", func() (bool, string) {
		state, text := page2.status(t)
		var code int
		var delay float64
		if _, err := fmt.Sscanf(text, "closed (%d), reconnecting in %f s", &code, &delay); err == nil && state == "closed" &&
			(len(delays) == 0 || delay != delays[len(delays)-1]) {
			delays = append(delays, delay)
		}
		return len(delays) == 3, fmt.Sprintf("%s %q, delays so far %v", state, text, delays)
	})
	t.Logf("page on node 2: reconnect delays shown: %v s", delays)
	if !slices.IsSorted(delays) || delays[len(delays)-1] > 10 {
		t.Fatalf("page on node 2: reconnect delays %v s: want them growing, up to 10 s", delays)
	}
	select {
	case <-node2.Exited():
	case <-time.After(exampleWait):
		t.Fatalf("node 2 still running %s after SIGTERM", exampleWait)
	}
	startExampleNode(t, "node2-again", rs, map[string]string{
		"PORT":       strconv.Itoa(node2.Port),
		"ADMIN_PORT": strconv.Itoa(node2.AdminPort),
	})
	for _, p := range pages {
		p.waitState(t, "open")
	}
	page1.send(t, "Node 2 is back")
	want = append(want, "Node 2 is back")
	waitAll(want...)

	for _, p := range pages {
		p.checkNoExceptions(t)
	}
}
