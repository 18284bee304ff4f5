package e2e

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chatPage is one tab with the chat page.
type chatPage struct {
	name string
	ctx  context.Context

	mu         sync.Mutex
	exceptions []string // uncaught JavaScript exceptions of the page
	sockets    []string // the URL of each WebSocket the page made, in order
}

// openChat opens url in a new tab of the browser and records the page's
// uncaught exceptions and the URLs of its WebSockets.
func openChat(t *testing.T, browser context.Context, name, url string) *chatPage {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	p := &chatPage{name: name, ctx: ctx}
	// Both subscriptions before the page loads.
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	sockets := chromedp.Events(ctx, network.WebSocketCreated)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for ev, err := range sockets { // ends when the tab's context does
			if err != nil {
				return
			}
			p.mu.Lock()
			p.sockets = append(p.sockets, ev.URL)
			p.mu.Unlock()
		}
	}()
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
	ctx, cancel := context.WithTimeout(p.ctx, wait)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
}

func pageEval[T any](t *testing.T, p *chatPage, expression string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, wait)
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
	deadline := time.Now().Add(wait)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last seen: %s", what, wait, seen)
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

// notices returns the page's own notes in the message list (such as "some
// messages may have been missed"), which are not messages.
func (p *chatPage) notices(t *testing.T) []string {
	t.Helper()
	return pageEval[[]string](t, p, `Array.from(document.querySelectorAll("#messages .notice"), e => e.textContent)`)
}

// socketURLs returns the URL of each WebSocket the page has made so far,
// the attempts that failed (offline) included.
func (p *chatPage) socketURLs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.sockets)
}

// setOffline takes this tab off the network (offline is true) or puts it
// back, as DevTools' network throttling does: the page's connection attempts
// fail, while its other tabs and the servers carry on.
func (p *chatPage) setOffline(t *testing.T, offline bool) {
	t.Helper()
	rules := []*network.Conditions{}
	if offline {
		rules = append(rules, &network.Conditions{Offline: true, DownloadThroughput: -1, UploadThroughput: -1})
	}
	p.do(t, chromedp.Func(func(ctx context.Context, tab *chromedp.Target) error {
		_, err := cdp.Call(ctx, tab, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{MatchedNetworkConditions: rules})
		return err
	}))
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
		ctx, cancel := context.WithTimeout(p.ctx, wait)
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

// chatConnections is the number of WebSockets open on a node's chat route
// (its caddy_redis_ws_connections gauge).
func chatConnections(t *testing.T, n *caddyNode) float64 {
	t.Helper()
	return scrapeMetrics(t, n)[`caddy_redis_ws_connections{handler="chat"}`]
}

// compressions is a node's count of messages compressed.
func compressions(t *testing.T, n *caddyNode) float64 {
	t.Helper()
	return scrapeMetrics(t, n)["caddy_redis_ws_messages_compressed_total"]
}
