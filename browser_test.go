package redisws

// The chat page of examples/chat in a real browser: headless Chromium
// (Debian's chromium package) driven through chromedp, against two nodes of
// the cluster example.

import (
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

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
	case <-time.After(wait):
		t.Fatalf("node 2 still running %s after SIGTERM", wait)
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
