package e2e

// POST, idempotent retries and event streams on Sentinel and on a Cluster
// (sharded Pub/Sub; the idempotency key in the channel's slot).

import (
	"net/http"
	"testing"
)

func TestHTTPOnSentinelAndCluster(t *testing.T) {
	for _, topo := range sentinelAndCluster {
		t.Run(topo.name, func(t *testing.T) {
			block, env := topo.redis(t)
			config := siteCaddyfile("", `
	redis_ws /rooms/* {
		subscribe room:{http.request.uri.path.1}
		redis {
			`+block+`
		}
		history 100
	}
	redis_ws /live live {
		redis {
			`+block+`
		}
	}`)
			ns := []*caddyNode{startNode(t, "node1", config, env), startNode(t, "node2", config, env)}
			stream := dialSSE(t, ns[1].URL("/rooms/{a}b"), nil) // braces: a hash tag of its own
			live := dialSSE(t, ns[0].URL("/live"), nil)
			key := http.Header{"Idempotency-Key": {"retry-1"}}
			first := postMessage(t, ns[0].URL("/rooms/{a}b"), "one", key)
			again := postMessage(t, ns[1].URL("/rooms/{a}b"), "one", key)
			if first.Status != 200 || first.Answer.Offset != 1 || again.Answer != (postResult{first.Answer.Channel, 1, first.Answer.Epoch, true}) {
				t.Fatalf("POST %d %q, retry %d %q: want offset 1 twice, the retry a duplicate", first.Status, first.Body, again.Status, again.Body)
			}
			mustPost(t, ns[1].URL("/rooms/{a}b"), "two")
			got := stream.Collect(t, 2, wait)
			if got[0] != (sseEvent{"message", "one", first.Answer.Epoch + ":1"}) || got[1].Data != "two" || got[1].ID != first.Answer.Epoch+":2" {
				t.Fatalf("stream got %v", got)
			}
			resumed := dialSSE(t, ns[0].URL("/rooms/{a}b"), http.Header{"Last-Event-ID": {got[0].ID}})
			if e := resumed.Next(t, wait); e.Data != "two" {
				t.Fatalf("resumed stream got %v", e)
			}
			if a := mustPost(t, ns[1].URL("/live"), "live"); a != (postResult{Channel: "live"}) {
				t.Fatalf("POST /live: %+v", a)
			}
			if e := live.Next(t, wait); e != (sseEvent{"message", "live", ""}) {
				t.Fatalf("live stream got %v", e)
			}
		})
	}
}
