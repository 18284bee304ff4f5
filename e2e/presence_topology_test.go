package e2e

// Presence on Sentinel and on a Cluster: the keys and the events channel of
// a channel in its slot, a query of channels in several slots in one
// pipeline.

import "testing"

func TestPresenceOnSentinelAndCluster(t *testing.T) {
	for _, topo := range sentinelAndCluster {
		t.Run(topo.name, func(t *testing.T) {
			block, env := topo.redis(t)
			config := siteCaddyfile("", `
	redis_ws /rooms/* {
		subscribe room:{http.request.uri.path.1} lobby
		publish room:{http.request.uri.path.1}
		redis {
			`+block+`
		}
		presence {
			user {http.request.uri.query.user}
			leave_delay 0
		}
	}`)
			ns := []*caddyNode{startNode(t, "node1", config, env), startNode(t, "node2", config, env)}
			watcher := dialEnvelope(t, ns[1].WSURL("/rooms/{a}b"))
			alice := dialWS(t, ns[0].WSURL("/rooms/{a}b?user=alice"), nil)
			bob := dialWS(t, ns[1].WSURL("/rooms/c?user=bob"), nil)
			expectPresenceSet(t, watcher, "join room:{a}b alice", "join lobby alice", "join lobby bob")
			waitPresence(t, ns, "/rooms/{a}b", "room:{a}b", 2, "alice")
			waitPresence(t, ns, "/rooms/{a}b", "lobby", 3, "alice", "bob")
			waitPresence(t, ns, "/rooms/c", "room:c", 1, "bob")
			alice.Close()
			bob.Close()
			expectPresenceSet(t, watcher, "leave room:{a}b alice", "leave lobby alice", "leave lobby bob")
			waitPresence(t, ns, "/rooms/{a}b", "lobby", 1)
		})
	}
}
