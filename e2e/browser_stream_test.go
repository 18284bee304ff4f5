package e2e

// The live feed of examples/chat (feed.html: the chat read-only, through an
// EventSource on the chat route) in headless Chromium, through the load
// balancer of the cluster example, while the node of its stream is killed.

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The feed page shows every message as text, never markup, and what an
// event cannot carry as it is (event: binary, base64) decoded when it is
// UTF-8. When the node of its stream is killed (SIGKILL) while messages are
// published at a steady pace, the browser's EventSource reconnects by
// itself, through the balancer, to the other node, with Last-Event-ID, and
// the page shows every message exactly once, in order, with no notice that
// some were missed: the page has no code for that.
func TestStreamBrowser(t *testing.T) {
	chromium := chromiumPath(t)
	rs := startRedis(t)
	node1 := startExampleNode(t, "node1", rs, nil)
	node2 := startExampleNode(t, "node2", rs, nil)
	lb := startExampleBalancer(t, node1, node2)
	browser := startBrowser(t, chromium)

	feed := openChat(t, browser, "feed through the balancer", lb.URL("/feed.html"))
	feed.waitState(t, "open")
	if urls := feed.socketURLs(); len(urls) != 0 {
		t.Fatalf("%s: WebSockets %q, want none", feed.name, urls)
	}

	// Which node has its stream.
	streams := func(n *caddyNode) float64 {
		return scrapeMetrics(t, n)[`caddy_redis_ws_event_streams{handler="chat"}`]
	}
	var dead, live *caddyNode
	waitForPage(t, feed.name+": the node of its stream", func() (bool, string) {
		s1, s2 := streams(node1), streams(node2)
		switch {
		case s1 == 1 && s2 == 0:
			dead, live = node1, node2
		case s1 == 0 && s2 == 1:
			dead, live = node2, node1
		}
		return dead != nil, fmt.Sprintf("%v event streams on node 1, %v on node 2", s1, s2)
	})
	t.Logf("%s: its stream is on %s; messages are published through %s", feed.name, dead.Name, live.Name)

	// Text, never markup. A body that is not UTF-8, or has a carriage
	// return, comes as event: binary: shown decoded when it is UTF-8.
	want := []string{"<b>x</b>", "[3 bytes of binary]", "carriage\r\nreturn"}
	for _, body := range []string{"<b>x</b>", "\xff\xfe\xfd", "carriage\r\nreturn"} {
		mustPost(t, live.URL("/ws"), body)
	}
	waitFeed(t, feed, want)
	if pageEval[bool](t, feed, `document.querySelector("#messages b") !== null`) {
		t.Fatalf("%s: a message became markup", feed.name)
	}

	// From now on: the page's connection states, and the Last-Event-ID of
	// each stream it asks for.
	feed.do(t, chromedp.Evaluate[chromedp.Void](`window.states = [];
		new MutationObserver(() => states.push(statusLine.dataset.state)).observe(statusLine, {attributeFilter: ["data-state"]})`))
	requests := watchStreamRequests(t, feed)

	// 200 messages, one every 10 ms, all through the live node; after the
	// 100th is taken, the node of the stream is killed: no end of stream,
	// the balancer just loses its connection. The browser waits a few
	// seconds before it reconnects, so most of the second half is
	// published while the page is away.
	const total, killAfter = 200, 100
	numbers := numbered("message ", total)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var killed time.Time
	for i, m := range numbers {
		<-tick.C
		mustPost(t, live.URL("/ws"), m)
		if i+1 == killAfter {
			dead.Kill(t)
			killed = time.Now()
		}
	}
	back := pageEval[int](t, feed, `opens`) > 1
	t.Logf("%s: the last message was published %s after the kill, the page %s", feed.name,
		time.Since(killed).Round(time.Millisecond), map[bool]string{true: "back already", false: "still away"}[back])

	want = append(want, numbers...)
	waitFeed(t, feed, want)
	t.Logf("%s: all %d messages shown, %s after the kill", feed.name, len(want), time.Since(killed).Round(time.Millisecond))
	waitForPage(t, feed.name+": its stream on "+live.Name, func() (bool, string) {
		n := streams(live)
		return n == 1, fmt.Sprintf("%v event streams on %s", n, live.Name)
	})
	if opens := pageEval[int](t, feed, `opens`); opens != 2 {
		t.Errorf("%s: the EventSource opened %d times, want 2 (once, then once again after the kill)", feed.name, opens)
	}
	states := slices.Compact(pageEval[[]string](t, feed, `states`))
	if !slices.Equal(states, []string{"closed", "open"}) {
		t.Errorf("%s: states after the kill %q, want closed, then open", feed.name, states)
	}
	got := requests()
	var resumed []protocol.ChannelPosition // from the last
	if len(got) > 0 {
		resumed, _ = protocol.ParseEventID(got[len(got)-1])
	}
	if len(resumed) != 1 || resumed[0].Channel != "" {
		t.Errorf("%s: Last-Event-ID of the streams asked for after the kill: %q, want <epoch>:<offset> on the last", feed.name, got)
	}
	if notes := feed.notices(t); len(notes) != 0 {
		t.Errorf("%s: notices %q, want none", feed.name, notes)
	}
	feed.checkNoExceptions(t)
}

// waitFeed waits until the page shows want, in order, and fails at once if
// what it shows stops being a beginning of it: messages are only appended,
// so a message shown twice, out of order or skipped stays so.
func waitFeed(t *testing.T, p *chatPage, want []string) {
	t.Helper()
	waitForPage(t, fmt.Sprintf("%s: %d messages", p.name, len(want)), func() (bool, string) {
		got := p.messages(t)
		for i, m := range got {
			if i >= len(want) || m != want[i] {
				t.Fatalf("%s: message %d is %q; want %d messages %q…; shows %q", p.name, i+1, m, len(want),
					want[:min(3, len(want))], got[max(0, i-3):min(len(got), i+3)])
			}
		}
		return len(got) == len(want), fmt.Sprintf("%d of %d messages, the last %q", len(got), len(want), got[max(0, len(got)-3):])
	})
}

// watchStreamRequests records the requests of the page's EventSource from
// now on; the function it returns gives the Last-Event-ID each sent, in
// order ("" for none). The header is one the network stack adds: only the
// raw headers of requestWillBeSentExtraInfo have it.
func watchStreamRequests(t *testing.T, p *chatPage) func() []string {
	t.Helper()
	var mu sync.Mutex
	var streams []network.RequestID              // the EventSource's requests, in order
	sent := map[network.RequestID]string{}       // Last-Event-ID of each request that had one
	err := chromedp.Listen(p.ctx, func(ev any) { // on the tab's reading goroutine: quick, no commands
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			if ev.Type == network.ResourceTypeEventSource {
				streams = append(streams, ev.RequestID)
			}
		case *network.EventRequestWillBeSentExtraInfo:
			for k, v := range ev.Headers {
				if strings.EqualFold(k, "Last-Event-ID") {
					sent[ev.RequestID] = fmt.Sprint(v)
				}
			}
		}
	})
	if err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		ids := make([]string, len(streams))
		for i, id := range streams {
			ids[i] = sent[id]
		}
		return ids
	}
}
