package e2e

// Envelope clients (subprotocol redis_ws.v1) and what they read: dialing
// with the subprotocol, decoding frames, and the checks that a run of
// recorded messages is complete, in order and without duplicates.

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
	"github.com/gorilla/websocket"
)

// envelope is a frame an envelope client read, with shorthands for the
// tests.
type envelope struct{ protocol.Frame }

func (e envelope) offset() int64 {
	p, _ := e.Position()
	return p.Offset
}

func (e envelope) data() string { return string(e.Payload()) }

// readEnvelope reads a frame with protocol.Parse, and checks that it is
// byte for byte what package protocol writes: the server and clients that
// use the package agree. A name that was not UTF-8 (a user from a header)
// comes as \ufffd, which reads back as the character itself: such a frame
// is only parsed.
func readEnvelope(b []byte) (envelope, error) {
	f, err := protocol.Parse(b)
	if err != nil {
		return envelope{}, err
	}
	if again := f.String(); again != string(b) && !bytes.Contains(b, []byte(`\ufffd`)) {
		return envelope{}, fmt.Errorf("frame %s is not as package protocol writes it: %s", b, again)
	}
	return envelope{f}, nil
}

func envelopeHeader() http.Header {
	return http.Header{"Sec-WebSocket-Protocol": {protocol.Subprotocol}}
}

// dialEnvelope connects with the envelope subprotocol and checks that the
// server chose it.
func dialEnvelope(t testing.TB, url string) *wsClient {
	t.Helper()
	c := dialWS(t, url, envelopeHeader())
	if p := c.Conn.Subprotocol(); p != protocol.Subprotocol {
		t.Fatalf("dial %s: subprotocol %q, want %s", url, p, protocol.Subprotocol)
	}
	return c
}

// decodeEnvelope reads one text frame (readEnvelope), or fails the test.
func decodeEnvelope(t testing.TB, m wsMessage) envelope {
	t.Helper()
	if m.Type != websocket.TextMessage {
		t.Fatalf("envelope frame is not text: %v", m)
	}
	e, err := readEnvelope(m.Data)
	if err != nil {
		t.Fatalf("envelope frame %v: %v", m, err)
	}
	return e
}

func nextEnvelope(t testing.TB, c *wsClient) envelope {
	t.Helper()
	return decodeEnvelope(t, c.Next(t, wait))
}

// expectSubscribed reads the subscribed frame of ch.
func expectSubscribed(t testing.TB, c *wsClient, ch string) envelope {
	t.Helper()
	e := nextEnvelope(t, c)
	if e.Type != protocol.TypeSubscribed || e.Channel != ch {
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

// follower is an envelope client that follows one channel the way a
// resuming client does: it checks that the offsets it reads go 1, 2, 3, …
// with no hole and no duplicate, and when its connection ends it connects
// again with ?since=<epoch>:<last offset> and expects recovered:true. It
// runs on its own goroutine, so it records errors instead of failing.
type follower struct {
	base string // upgrade URL without query
	ch   string

	mu      sync.Mutex
	epoch   string
	last    int64
	closes  []int       // close codes of the connections that ended
	closed  []time.Time // when each of them ended
	resumes []time.Time // when each resumed connection was open
	errs    []string
	resumed int       // connections after the first
	backAt  time.Time // a resumed connection replayed up to its subscribed offset
	doneAt  time.Time // the last offset was read
}

// follow runs until offset until was read or the deadline passed.
func (f *follower) follow(t testing.TB, until int64, deadline time.Time) {
	since := ""
	for time.Now().Before(deadline) {
		c, _, err := tryDialWS(t, f.base+since, envelopeHeader())
		if err != nil {
			time.Sleep(100 * time.Millisecond) // the client's own backoff between tries
			continue
		}
		if since != "" {
			f.mu.Lock()
			f.resumes = append(f.resumes, time.Now())
			f.mu.Unlock()
		}
		done := f.read(c, since != "", until, deadline)
		c.Close()
		if done {
			return
		}
		f.mu.Lock()
		f.closes = append(f.closes, c.closeCode)
		f.closed = append(f.closed, c.closedAt)
		f.resumed++
		since = "?since=" + f.epoch + ":" + strconv.FormatInt(f.last, 10)
		f.mu.Unlock()
	}
	f.fail("gave up at offset %d of %d", f.offsetNow(), until)
}

// read reads one connection; true when offset until was read.
func (f *follower) read(c *wsClient, resuming bool, until int64, deadline time.Time) bool {
	subscribed := false
	target := int64(-1) // resuming: the latest offset when it came back
	for {
		m, r := c.pop(deadline)
		if r != popMessage {
			return false
		}
		e, err := readEnvelope(m.Data)
		if err != nil {
			f.fail("%v", err)
			continue
		}
		f.mu.Lock()
		switch {
		case e.Type == protocol.TypeSubscribed:
			subscribed = true
			if resuming && (e.Recovered == nil || !*e.Recovered) {
				f.errs = append(f.errs, fmt.Sprintf("resumed at %s:%d: %v", f.epoch, f.last, e))
			}
			if resuming {
				target = e.offset()
			}
			if f.epoch == "" {
				f.epoch, f.last = e.Epoch, e.offset()
			}
		case !subscribed || e.Channel != f.ch:
			f.errs = append(f.errs, fmt.Sprintf("unexpected before the subscribed frame of %s: %v", f.ch, e))
		default:
			// Offset 1 of any epoch follows 0:0, the position without history.
			if at, _ := e.Position(); !(protocol.Position{Epoch: f.epoch, Offset: f.last}).FollowedBy(at) {
				f.errs = append(f.errs, fmt.Sprintf("after %s:%d got %v", f.epoch, f.last, e))
			}
			f.epoch, f.last = e.Epoch, e.offset()
		}
		if target >= 0 && f.last >= target && f.backAt.IsZero() {
			f.backAt = time.Now()
		}
		done := f.last >= until
		if done {
			f.doneAt = time.Now()
		}
		f.mu.Unlock()
		if done {
			return true
		}
	}
}

func (f *follower) fail(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}

func (f *follower) offsetNow() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// check fails the test with the follower's errors.
func (f *follower) check(t testing.TB) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errs) > 0 {
		t.Fatalf("%s: %d errors, first ones: %s", f.base, len(f.errs), strings.Join(f.errs[:min(5, len(f.errs))], "; "))
	}
}

// pacedSender sends "<prefix><i>" for i in 1..n from one client at a steady
// rate on its own goroutine, so that the test can break things meanwhile.
type pacedSender struct {
	sent atomic.Int64
	done chan struct{}
	err  error // valid after done
}

func startPaced(c *wsClient, prefix string, n, rate int) *pacedSender {
	p := &pacedSender{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for i := 1; i <= n; i++ {
			<-tick.C
			if p.err = c.TrySend(websocket.TextMessage, []byte(prefix+strconv.Itoa(i))); p.err != nil {
				return
			}
			p.sent.Store(int64(i))
		}
	}()
	return p
}

// waitSent waits until i messages are sent.
func (p *pacedSender) waitSent(t testing.TB, i int) {
	t.Helper()
	testkit.Eventually(t, wait, func() bool {
		select {
		case <-p.done:
			if p.err != nil {
				t.Fatalf("sender stopped at %d: %v", p.sent.Load(), p.err)
			}
		default:
		}
		return p.sent.Load() >= int64(i)
	}, "sender stuck at %v of %d", atFailure(func() any { return p.sent.Load() }), i)
}

// finish waits until every message is sent.
func (p *pacedSender) finish(t testing.TB) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(2 * wait):
		t.Fatalf("sender stuck at %d", p.sent.Load())
	}
	if p.err != nil {
		t.Fatalf("sender: %v", p.err)
	}
}
