package e2e

// History while Redis is down: a resume that cannot be answered gets 503,
// a plain envelope client is served with a subscribed frame without a
// position, and raw clients are served as always.

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
)

func TestHistoryRedisDown(t *testing.T) {
	rs := startRedis(t)
	n := historyNodes(t, 1, rs, "")[0]
	epoch := expectSubscribed(t, dialEnvelope(t, n.WSURL("/ws")), "chat").Epoch
	rs.Kill(t)
	testkit.Eventually(t, wait, func() bool { return countLines(n.Logs(), "redis subscription lost") == 1 }, "the node did not notice Redis is down")

	_, resp, err := tryDialWS(t, sinceURL(n.WSURL("/ws"), epoch, 0), envelopeHeader())
	if err == nil || resp == nil {
		t.Fatalf("resume with Redis down: upgraded (%v), want 503", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "history cannot be read") {
		t.Fatalf("resume with Redis down: %s, Retry-After %q, %q; want 503 with Retry-After saying why", resp.Status, resp.Header.Get("Retry-After"), body)
	}
	c := dialEnvelope(t, n.WSURL("/ws"))
	if s := expectSubscribed(t, c, "chat"); s.Offset != nil || s.Epoch != "" {
		t.Fatalf("subscribed with Redis down: %v, want no position", s)
	}
	dialWS(t, n.WSURL("/ws"), nil) // raw clients are served
}
