package e2e

// The chat page of examples/chat in a real browser: headless Chromium
// (Debian's chromium package) driven through chromedp, against two nodes of
// the cluster example.

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/chromedp/chromedp"
)

// Two chat pages on two different nodes exchange messages both ways, a
// message published with redis-cli shows up in both, message text is never
// taken for markup, and a page whose node stops reconnects by itself, with
// growing delays, when the node is back. A third page, opened through the
// load balancer of the cluster example as run.sh serves it, takes part too:
// the browser's Origin is the balancer's address and redis_ws's default
// origin check accepts it, because the balancer passes the Host header on.
// With the route's history (history 1000 1h in node.caddyfile), a page
// opened late, through the balancer, shows the recorded messages; when its
// node is killed, it comes back through the balancer with ?since= and shows
// each message it missed once, in order; and when the history is gone, it
// says that messages may have been missed.
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

	// Chromium agrees to permessage-deflate, through the balancer too, and
	// a long message goes compressed both ways: from the page to its node,
	// which inflates it for Redis, and from each node to its pages.
	for _, p := range pages {
		if ext := pageEval[string](t, p, `socket.extensions`); !strings.HasPrefix(ext, "permessage-deflate") {
			t.Fatalf("%s: socket.extensions %q, want permessage-deflate", p.name, ext)
		}
	}
	long := "A longer message, so that it is compressed: " + strings.Repeat("the quick brown fox jumps over the lazy dog, ", 12)
	compressed := map[*caddyNode]float64{node1: compressions(t, node1), node2: compressions(t, node2)}
	page1.send(t, long)
	want = append(want, long)
	waitAll(want...)
	for n, before := range compressed {
		if after := compressions(t, n); after != before+1 {
			t.Fatalf("%s: %v compressions for one long message to its pages, want 1", n.Name, after-before)
		}
	}

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
	node2 = startExampleNode(t, "node2-again", rs, map[string]string{
		"PORT":       strconv.Itoa(node2.Port),
		"ADMIN_PORT": strconv.Itoa(node2.AdminPort),
	})
	for _, p := range pages {
		p.waitState(t, "open")
	}
	page1.send(t, "Node 2 is back")
	want = append(want, "Node 2 is back")
	waitAll(want...)

	// The route keeps a history (history 1000 1h in node.caddyfile). A page
	// opened now, through the balancer, starts with the recent messages
	// (?rewind=50): all of them but the one published with redis-cli, which
	// went to the subscribers as it was and was not recorded.
	recorded := slices.DeleteFunc(slices.Clone(want), func(s string) bool { return s == "Published with redis-cli" })
	before := map[*caddyNode]float64{node1: chatConnections(t, node1), node2: chatConnections(t, node2)}
	late := openChat(t, browser, "late page through the balancer", lb.URL("/"))
	late.waitState(t, "open")
	late.waitMessages(t, recorded...)
	if urls := late.socketURLs(); len(urls) != 1 || !strings.HasSuffix(urls[0], "/ws?rewind=50") {
		t.Fatalf("%s: WebSockets %q, want one to /ws?rewind=50", late.name, urls)
	}

	// Which node has it: the one with one connection more.
	var dead, live *caddyNode
	waitForPage(t, late.name+": its node", func() (bool, string) {
		up1, up2 := chatConnections(t, node1)-before[node1], chatConnections(t, node2)-before[node2]
		switch {
		case up1 == 1 && up2 == 0:
			dead, live = node1, node2
		case up1 == 0 && up2 == 1:
			dead, live = node2, node1
		}
		return dead != nil, fmt.Sprintf("connections up by %v on node 1 and %v on node 2", up1, up2)
	})
	sender := map[*caddyNode]*chatPage{node1: page1, node2: page2}[live] // the page on the live node
	t.Logf("%s is on %s; %s sends from %s", late.name, dead.Name, sender.name, live.Name)

	// Its node dies (SIGKILL: no close frame, the balancer just drops the
	// connection), and while the page is away the page on the other node
	// sends three messages. The tab is offline meanwhile (its open socket
	// stays open until the kill; its new ones fail), so that it cannot be
	// back before they are sent: they are missed for sure, not received
	// live.
	late.setOffline(t, true)
	dead.Kill(t)
	late.waitState(t, "closed")
	t.Logf("%s: status %q", late.name, pageEval[string](t, late, `document.getElementById("status").textContent`))
	away := []string{"Sent while the late page was away", "Second one", "Third one"}
	for _, m := range away {
		sender.send(t, m)
	}
	sender.waitMessages(t, append(slices.Clone(want), away...)...)
	if got := late.messages(t); !slices.Equal(got, recorded) {
		t.Fatalf("%s: shows %q while away, want %q; WebSockets %q", late.name, got, recorded, late.socketURLs())
	}

	// Back on the network, the page reconnects by itself, through the
	// balancer, to the live node, asking for what came after the last
	// message it had (?since=<epoch>:N, N the recorded ones it has), and shows
	// each missed message once, in order, after what it had. A last
	// message, received live, shows that nothing else comes in between.
	late.setOffline(t, false)
	late.waitState(t, "open")
	const back = "After the late page came back"
	sender.send(t, back)
	lateWant := append(append(slices.Clone(recorded), away...), back)
	late.waitMessages(t, lateWant...)
	urls := late.socketURLs()
	sinceLast := regexp.MustCompile(fmt.Sprintf(`/ws\?since=[A-Za-z0-9_-]+:%d$`, len(recorded)))
	for _, u := range urls[1:] { // the attempts that failed offline too
		if !sinceLast.MatchString(u) {
			t.Errorf("%s: reconnected to %q, want /ws?since=<epoch>:%d", late.name, u, len(recorded))
		}
	}
	t.Logf("%s: WebSockets %q", late.name, urls)

	// The pages that stayed connected saw the same live: the sender, and the
	// page through the balancer, which came back with ?since= too if it was
	// on the dead node.
	others := []*chatPage{sender, page3}
	othersWant := append(append(slices.Clone(want), away...), back)
	for _, p := range others {
		p.waitMessages(t, othersWant...)
	}

	// When the history cannot give all that a page missed, the page says
	// so, in a notice that is not a message, and goes on with the live
	// messages. Here the history is gone (its keys deleted, as a Redis
	// restarted without persistence loses them) while the late page is
	// away: offline again, its socket closed by the page itself.
	late.setOffline(t, true)
	late.do(t, chromedp.Evaluate[chromedp.Void](`socket.close()`))
	late.waitState(t, "closed")
	if n, err := rs.Client(t).Del(context.Background(), bus.HistoryKeys("chat")...).Result(); err != nil || n != 2 {
		t.Fatalf("deleting the history of chat: %d keys, %v (want 2)", n, err)
	}
	const lost = "Sent after the history was lost"
	sender.send(t, lost)
	othersWant = append(othersWant, lost)
	sender.waitMessages(t, othersWant...)
	late.setOffline(t, false)
	waitForPage(t, late.name+": the notice that messages may be missing", func() (bool, string) {
		notes := late.notices(t)
		return len(notes) == 1 && strings.Contains(notes[0], "missed"), fmt.Sprintf("notices %q", notes)
	})
	const again = "Live again"
	sender.send(t, again)
	late.waitMessages(t, append(lateWant, again)...)
	for _, p := range others {
		p.waitMessages(t, append(othersWant, again)...)
		if notes := p.notices(t); len(notes) != 0 {
			t.Errorf("%s: notices %q, want none", p.name, notes)
		}
	}
	for _, p := range append(pages, late) {
		p.checkNoExceptions(t)
	}
}
