package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// publishResult is the JSON line of a publish run.
type publishResult struct {
	Mode       string   `json:"mode"`
	Time       string   `json:"time"`
	URLs       []string `json:"urls"`
	Pubs       int      `json:"pubs"`
	Connected  int      `json:"pubs_connected"`
	SizeBytes  int      `json:"size_bytes"`
	DurationS  float64  `json:"duration_s"`
	Sent       uint64   `json:"sent"`
	SentPerS   float64  `json:"sent_per_s"`
	SendErrors int      `json:"send_errors"`
	DrainS     float64  `json:"drain_s"`              // after the send window, until the node closed every connection
	Unclosed   int      `json:"unclosed"`             // connections the node had not closed by the end of -drain
	RateAsked  float64  `json:"rate_asked,omitempty"` // -rate: frames/s in all, paced; 0: as fast as they can
	Error      string   `json:"error,omitempty"`
}

// publishBatch is how many frames one write carries: the generator must not
// be what limits the node's publish path.
const publishBatch = 256

// publishMode opens -pubs connections and has each send -size byte text
// frames as fast as its socket takes them, for -duration. The frames are
// built once, masked with a fixed key, and written publishBatch at a time
// straight to the socket; with -rate, paced to that many frames a second in all.
// It then closes each connection and waits, at most -drain after the send
// window, until the node has read everything and closed. What reaches Redis
// is counted outside the tool (bench/publish.sh reads INFO commandstats).
func publishMode(c *config) int {
	res := &publishResult{Mode: "publish", Time: time.Now().UTC().Format(time.RFC3339), URLs: c.urls, Pubs: c.pubs, SizeBytes: c.size}
	targets := make([]string, c.pubs)
	for i := range targets {
		targets[i] = c.urls[i%len(c.urls)]
	}
	d := dialAll(c, targets, 4096, 4096, time.Now().Add(c.connectBudget(c.pubs)), nil)
	// Whatever the node sends (pings) is read and discarded: a socket closed
	// with unread data resets the connection, and the node would lose the
	// frames it had not read yet. Each reader ends when the node closes.
	closed := make([]chan struct{}, len(d.conns))
	for i, conn := range d.conns {
		if conn == nil {
			continue
		}
		closed[i] = make(chan struct{})
		go func() {
			defer close(closed[i])
			_, _ = io.Copy(io.Discard, conn.NetConn())
		}()
	}
	batch := maskedFrames(c.size, publishBatch)
	frameLen := len(batch) / publishBatch
	var sent atomic.Uint64
	var errs atomic.Int64
	var wg sync.WaitGroup
	// -rate given: each connection sends its share, a batch at a time
	var every time.Duration
	if live := countLive(d.conns); c.paced && live > 0 {
		res.RateAsked = c.rate
		every = time.Duration(float64(publishBatch) / (c.rate / float64(live)) * float64(time.Second))
	}
	start := time.Now()
	end := start.Add(c.duration)
	for _, conn := range d.conns {
		if conn == nil {
			continue
		}
		res.Connected++
		wg.Add(1)
		go func() {
			defer wg.Done()
			raw := conn.NetConn()
			for b := 0; time.Now().Before(end); b++ {
				if every > 0 {
					if wait := time.Until(start.Add(time.Duration(b) * every)); wait > 0 {
						time.Sleep(wait)
					}
				}
				// a write blocks while the node is behind: a long bound, so
				// that no frame is cut in half
				_ = raw.SetWriteDeadline(end.Add(30 * time.Second))
				n, err := raw.Write(batch)
				// a failed write counts the whole frames it got out, so that
				// sent can be compared exactly with what Redis recorded
				sent.Add(uint64(n / frameLen))
				if err != nil {
					errs.Add(1)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	// Close frames, then wait (at most -drain) until the node has read
	// everything before them and closed: then sent is what it received.
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bench done")
	deadline := time.Now().Add(c.drain)
	for _, conn := range d.conns {
		if conn != nil {
			_ = conn.WriteControl(websocket.CloseMessage, msg, deadline)
		}
	}
	drainEnd := time.After(time.Until(deadline))
	for _, ch := range closed {
		if ch == nil {
			continue
		}
		select {
		case <-ch:
		case <-drainEnd:
			res.Unclosed++
		}
	}
	res.DrainS = round3((time.Since(start) - elapsed).Seconds())
	closeAll(d.conns)
	res.DurationS = round3(elapsed.Seconds())
	res.Sent = sent.Load()
	res.SentPerS = round3(float64(res.Sent) / elapsed.Seconds())
	res.SendErrors = int(errs.Load())
	if res.Connected == 0 {
		res.Error = "no publisher connected"
	}
	emitJSON(res)
	if !c.jsonOnly {
		fmt.Fprintf(os.Stderr, "\n== publish: %d/%d connections, %d B frames, %.1fs ==\nsent        %d frames, %.0f/s, %d send errors\n",
			res.Connected, res.Pubs, res.SizeBytes, res.DurationS, res.Sent, res.SentPerS, res.SendErrors)
	}
	if res.Error != "" {
		return 1
	}
	return 0
}

func countLive(conns []*websocket.Conn) int {
	n := 0
	for _, c := range conns {
		if c != nil {
			n++
		}
	}
	return n
}

// maskedFrames returns n copies of one masked client text frame (RFC 6455
// §5.3) with a size-byte payload.
func maskedFrames(size, n int) []byte {
	payload := []byte(strings.Repeat("p", size))
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	frame := []byte{0x81}
	switch {
	case size <= 125:
		frame = append(frame, 0x80|byte(size))
	case size <= 0xffff:
		frame = binary.BigEndian.AppendUint16(append(frame, 0x80|126), uint16(size))
	default:
		frame = binary.BigEndian.AppendUint64(append(frame, 0x80|127), uint64(size))
	}
	frame = append(frame, key[:]...)
	for i, b := range payload {
		frame = append(frame, b^key[i%4])
	}
	out := make([]byte, 0, n*len(frame))
	for range n {
		out = append(out, frame...)
	}
	return out
}
