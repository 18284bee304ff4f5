package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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
	Error      string   `json:"error,omitempty"`
}

// publishBatch is how many frames one write carries: the generator must not
// be what limits the node's publish path.
const publishBatch = 256

// publishMode opens -pubs connections and has each send -size byte text
// frames as fast as its socket takes them, for -duration. The frames are
// built once, masked with a fixed key, and written publishBatch at a time
// straight to the socket. What reaches Redis is counted outside the tool
// (bench/publish.sh reads INFO commandstats).
func publishMode(c *config) int {
	res := &publishResult{Mode: "publish", Time: time.Now().UTC().Format(time.RFC3339), URLs: c.urls, Pubs: c.pubs, SizeBytes: c.size}
	targets := make([]string, c.pubs)
	for i := range targets {
		targets[i] = c.urls[i%len(c.urls)]
	}
	d := dialAll(c, targets, 4096, 4096, time.Now().Add(c.connectBudget(c.pubs)))
	batch := maskedFrames(c.size, publishBatch)
	var sent atomic.Uint64
	var errs atomic.Int64
	var wg sync.WaitGroup
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
			for time.Now().Before(end) {
				_ = raw.SetWriteDeadline(end.Add(time.Second))
				if _, err := raw.Write(batch); err != nil {
					errs.Add(1)
					return
				}
				sent.Add(publishBatch)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
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
