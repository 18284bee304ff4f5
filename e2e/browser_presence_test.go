package e2e

// Who is online in the chat page of examples/chat, in headless Chromium,
// with two pages on two nodes of the cluster example.

import (
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Each page shows every named page online, whichever node it is on. A
// reload of one page (within the leave delay, 5 s in the example) changes
// nothing on the other; once a page is gone, the other shows it gone after
// the delay.
func TestPresenceBrowser(t *testing.T) {
	chromium := chromiumPath(t)
	rs := startRedis(t)
	node1 := startExampleNode(t, "node1", rs, nil)
	node2 := startExampleNode(t, "node2", rs, nil)
	browser := startBrowser(t, chromium)

	alice := openChat(t, browser, "alice's page on node 1", node1.URL("/?name=alice"))
	bob := openChat(t, browser, "bob's page on node 2", node2.URL("/?name=bob"))
	waitOnline(t, alice, "alice,bob")
	waitOnline(t, bob, "alice,bob")

	// From now on, every list bob's page shows.
	bob.do(t, chromedp.Evaluate[chromedp.Void](`window.shown = [];
		new MutationObserver(() => shown.push(onlineLine.dataset.users)).observe(onlineLine, {attributeFilter: ["data-users"]})`))
	alice.do(t, chromedp.Reload())
	alice.waitState(t, "open")
	waitOnline(t, alice, "alice,bob")
	time.Sleep(6 * time.Second) // past the leave delay: asserting that nothing happened
	if shown := pageEval[[]string](t, bob, `shown`); slices.ContainsFunc(shown, func(s string) bool { return s != "alice,bob" }) {
		t.Errorf("%s while alice's page reloaded: %q, want alice and bob throughout", bob.name, shown)
	}

	bob.do(t, chromedp.Evaluate[chromedp.Void](`socket.onclose = null; socket.close()`)) // bob leaves for good
	gone := time.Now()
	waitOnline(t, alice, "alice")
	t.Logf("%s: bob gone %s after his page was", alice.name, time.Since(gone).Round(time.Millisecond))
	alice.checkNoExceptions(t)
	bob.checkNoExceptions(t)
}

// waitOnline waits until the page shows users (comma-separated, sorted) online.
func waitOnline(t *testing.T, p *chatPage, users string) {
	t.Helper()
	waitForPage(t, p.name+": online "+users, func() (bool, string) {
		got := pageEval[string](t, p, `onlineLine.dataset.users ?? "(not known yet)"`)
		return got == users, "online: " + got
	})
}
