package e2e

// Helpers of the tests of reads: raw upgrade requests and their refusals,
// what a client is told at the start, and what Redis did meanwhile.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"
)

// validKey is a Sec-WebSocket-Key line (RFC 6455's example).
const validKey = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="

// upgradeRequest is an upgrade request as bytes, with the header lines given.
func upgradeRequest(method, path string, lines ...string) string {
	return method + " " + path + " HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		strings.Join(append(lines, ""), "\r\n") + "\r\n"
}

// expectRefused sends a request on a connection of its own and checks the
// status and that the body says why.
func expectRefused(n *caddyNode, request string, status int, reason string) error {
	_, err := refusedAnswer(n, request, status, reason)
	return err
}

// expectHandshakeRefused is expectRefused for an upgrade that gorilla
// would refuse, with its headers: the version the server speaks, and for a
// 405 the methods.
func expectHandshakeRefused(n *caddyNode, request string, status int, reason string) error {
	h, err := refusedAnswer(n, request, status, reason)
	switch {
	case err != nil:
		return err
	case h.Get("Sec-WebSocket-Version") != "13":
		return fmt.Errorf("%d without Sec-WebSocket-Version: 13", status)
	case status == http.StatusMethodNotAllowed && h.Get("Allow") == "":
		return fmt.Errorf("%d without Allow", status)
	}
	return nil
}

// refusedAnswer sends a request and checks its answer; it returns the
// answer's header.
func refusedAnswer(n *caddyNode, request string, status int, reason string) (http.Header, error) {
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", n.Port), wait)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(conn, request); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != status || !strings.Contains(string(body), reason) {
		return nil, fmt.Errorf("%s %q, want %d saying %q", resp.Status, body, status, reason)
	}
	return resp.Header, nil
}

// openWS upgrades, or says why not.
func openWS(n *caddyNode, path string, header http.Header) (*websocket.Conn, error) {
	conn, resp, err := wsDialer.Dial(n.WSURL(path), header)
	if err != nil && resp != nil {
		body, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("%v: %s %q", err, resp.Status, body)
	}
	return conn, err
}

// expectSubscribedAt upgrades as an envelope client and checks its
// subscribed frame: channel, position and recovered (nil: absent).
func expectSubscribedAt(n *caddyNode, path, ch, at string, recovered *bool) error {
	conn, err := openWS(n, path, envelopeHeader())
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	_, data, err := conn.ReadMessage()
	if err != nil {
		return err
	}
	e, err := readEnvelope(data)
	if err != nil {
		return err
	}
	pos, _ := e.Position()
	ok := e.Type == protocol.TypeSubscribed && e.Channel == ch && pos.String() == at &&
		(recovered == nil) == (e.Recovered == nil) && (recovered == nil || *recovered == *e.Recovered)
	if !ok {
		want := "absent"
		if recovered != nil {
			want = strconv.FormatBool(*recovered)
		}
		return fmt.Errorf("first frame %s, want subscribed to %s at %s, recovered %s", data, ch, at, want)
	}
	return nil
}

// expectOpeningID opens an event stream and checks its first line.
func expectOpeningID(n *caddyNode, path string, header http.Header, id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	resp, err := openStream(ctx, sseHTTP, n.URL(path), header)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "id: "+id+"\n" {
		return fmt.Errorf("first line %q (%v), want the id %s", line, err, id)
	}
	return nil
}

func dbsize(t testing.TB, rdb *redis.Client) int64 {
	t.Helper()
	n, err := rdb.DBSize(context.Background()).Result()
	if err != nil {
		t.Fatalf("DBSIZE: %v", err)
	}
	return n
}

// commandCalls is how many times Redis ran each command, scripts' own
// commands included (INFO commandstats).
func commandCalls(t testing.TB, rdb *redis.Client) map[string]int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	calls := make(map[string]int64)
	for _, line := range strings.Split(info, "\r\n") {
		name, stats, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(stats[:strings.IndexByte(stats+",", ',')], 10, 64)
		calls[name] = n
	}
	return calls
}

// netOutput is the bytes Redis has sent to its clients so far.
func netOutput(t testing.TB, rdb *redis.Client) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatalf("INFO stats: %v", err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_net_output_bytes:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatalf("INFO stats has no total_net_output_bytes: %q", info)
	return 0
}
