package redisws

// Envelope clients (subprotocol redis_ws.v1) and what they read: dialing
// with the subprotocol, decoding frames, and the checks that a run of
// recorded messages is complete, in order and without duplicates.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"

	"github.com/gorilla/websocket"
)

// envelopeFrame is any frame an envelope client reads.
type envelopeFrameJSON struct {
	Type       string  `json:"type"`
	Channel    string  `json:"channel"`
	Offset     *int64  `json:"offset"`
	Epoch      string  `json:"epoch"`
	Recovered  *bool   `json:"recovered"`
	Data       *string `json:"data"`
	DataBase64 []byte  `json:"data_base64"`
}

func (e envelopeFrameJSON) offset() int64 {
	if e.Offset == nil {
		return 0
	}
	return *e.Offset
}

func (e envelopeFrameJSON) data() string {
	if e.Data != nil {
		return *e.Data
	}
	return string(e.DataBase64)
}

func (e envelopeFrameJSON) String() string {
	b, _ := json.Marshal(e)
	return string(b)
}

func envelopeHeader() http.Header {
	return http.Header{"Sec-WebSocket-Protocol": {"redis_ws.v1"}}
}

// dialEnvelope connects with the envelope subprotocol and checks that the
// server chose it.
func dialEnvelope(t testing.TB, url string) *wsClient {
	t.Helper()
	c := dialWS(t, url, envelopeHeader())
	if p := c.Conn.Subprotocol(); p != "redis_ws.v1" {
		t.Fatalf("dial %s: subprotocol %q, want redis_ws.v1", url, p)
	}
	return c
}

// decodeEnvelope reads one text frame as JSON, or fails the test.
func decodeEnvelope(t testing.TB, m wsMessage) envelopeFrameJSON {
	t.Helper()
	var e envelopeFrameJSON
	if m.Type != websocket.TextMessage {
		t.Fatalf("envelope frame is not text: %v", m)
	}
	if err := json.Unmarshal(m.Data, &e); err != nil {
		t.Fatalf("envelope frame is not JSON: %v (%v)", m, err)
	}
	return e
}

func nextEnvelope(t testing.TB, c *wsClient) envelopeFrameJSON {
	t.Helper()
	return decodeEnvelope(t, c.Next(t, wait))
}

// expectSubscribed reads the subscribed frame of ch.
func expectSubscribed(t testing.TB, c *wsClient, ch string) envelopeFrameJSON {
	t.Helper()
	e := nextEnvelope(t, c)
	if e.Type != "subscribed" || e.Channel != ch {
		t.Fatalf("%s: first frame %v, want a subscribed frame of %s", c.URL, e, ch)
	}
	return e
}

// expectOffsets reads recorded messages of ch and checks that they carry
// exactly the offsets from..to, in order, in epoch, with payloads that
// payload gives for each offset (nil: any).
func expectOffsets(t testing.TB, c *wsClient, ch, epoch string, from, to int64, payload func(int64) string) {
	t.Helper()
	for want := from; want <= to; want++ {
		e := nextEnvelope(t, c)
		if e.Channel != ch || e.Epoch != epoch || e.offset() != want {
			t.Fatalf("%s: got %v, want offset %d of %s in epoch %s", c.URL, e, want, ch, epoch)
		}
		if payload != nil && e.data() != payload(want) {
			t.Fatalf("%s: offset %d carries %q, want %q", c.URL, want, e.data(), payload(want))
		}
	}
}

// sinceURL is url with ?since=<epoch>:<offset>.
func sinceURL(url, epoch string, offset int64) string {
	return url + "?since=" + epoch + ":" + strconv.FormatInt(offset, 10)
}

// sequenceTexts reads n raw text messages and checks they are "<prefix><i>"
// for i from first on, in order.
func sequenceTexts(t testing.TB, c *wsClient, prefix string, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		m := c.Next(t, wait)
		if want := fmt.Sprintf("%s%d", prefix, i); string(m.Data) != want {
			t.Fatalf("%s: got %v, want %q", c.URL, m, want)
		}
	}
}
