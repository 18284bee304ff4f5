package e2e

// The handshake: subprotocol negotiation, and wss:// through Caddy's
// automatic HTTPS with its internal CA.

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/gorilla/websocket"
)

func TestSubprotocols(t *testing.T) {
	rs := startRedis(t)
	n := startNode(t, "node", siteCaddyfile("", `
	redis_ws /strict chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		subprotocols chat.v2 chat.v1
	}
	redis_ws /lenient chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		subprotocols chat.v2
		subprotocol_optional
	}`), map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port)})
	for _, tc := range []struct {
		path, offer, want string
		status            int
	}{
		{"/strict", "chat.v1", "chat.v1", http.StatusSwitchingProtocols},
		{"/strict", "chat.v1, chat.v2", "chat.v2", http.StatusSwitchingProtocols},
		{"/strict", "", "", http.StatusBadRequest},
		{"/strict", "other", "", http.StatusBadRequest},
		{"/lenient", "", "", http.StatusSwitchingProtocols},
		{"/lenient", "chat.v2", "chat.v2", http.StatusSwitchingProtocols},
	} {
		header := http.Header{}
		if tc.offer != "" {
			header.Set("Sec-WebSocket-Protocol", tc.offer)
		}
		c, resp, _ := tryDialWS(t, n.WSURL(tc.path), header)
		if resp == nil || resp.StatusCode != tc.status || resp.Header.Get("Sec-WebSocket-Protocol") != tc.want {
			t.Fatalf("%s offering %q: got %v, want %d with %q", tc.path, tc.offer, resp, tc.status, tc.want)
		}
		if c != nil {
			c.Close()
		}
	}
}

// wss:// through Caddy's automatic HTTPS with its internal CA.
func TestTLSInternal(t *testing.T) {
	rs := startRedis(t)
	n := tlsInternalNode(t, rs, "")
	dialer := &websocket.Dialer{HandshakeTimeout: wait, TLSClientConfig: &tls.Config{RootCAs: internalRoots(t, n)}}
	url := fmt.Sprintf("wss://localhost:%d/ws", n.Port)
	var conns []*websocket.Conn
	for range 2 {
		var conn *websocket.Conn
		testkit.Eventually(t, wait, func() bool { // the certificate is issued in the background
			var err error
			conn, _, err = dialer.Dial(url, nil)
			return err == nil
		}, "wss dial failed")
		defer conn.Close()
		conns = append(conns, conn)
	}
	if err := conns[0].WriteMessage(websocket.TextMessage, []byte("over tls")); err != nil {
		t.Fatal(err)
	}
	for _, conn := range conns {
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		if _, data, err := conn.ReadMessage(); err != nil || string(data) != "over tls" {
			t.Fatalf("got %q, %v", data, err)
		}
	}
}
