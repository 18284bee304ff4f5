package frame

import (
	"bytes"
	"compress/flate"
	"io"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// CompressedMessages counts the messages deflateFrame compressed.
var CompressedMessages = prometheus.NewCounter(prometheus.CounterOpts{
	Namespace: "caddy", Subsystem: "redis_ws", Name: "messages_compressed_total",
	Help: "Messages compressed for permessage-deflate clients: at most once per message and node, whatever the number of clients.",
})

// deflaters are flate writers at BestSpeed, 1.2 MB each to allocate.
var deflaters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestSpeed)
	return w
}}

// deflateFrame is the compressed form of a server frame made by newFrame:
// RSV1 set, the payload deflated and its final empty block's 4 bytes
// (00 00 ff ff) removed (RFC 7692 §7.2.1). It is wire itself when that
// would be no shorter.
func deflateFrame(wire []byte) []byte {
	payload := wire[HeaderLen(wire):]
	var buf bytes.Buffer
	buf.Grow(len(payload)/2 + 16)
	w := deflaters.Get().(*flate.Writer)
	w.Reset(&buf)
	_, _ = w.Write(payload) // a bytes.Buffer does not fail
	_ = w.Flush()
	w.Reset(io.Discard) // the pooled writer must not keep buf alive
	deflaters.Put(w)
	deflated := bytes.TrimSuffix(buf.Bytes(), []byte{0, 0, 0xff, 0xff})
	if len(deflated) >= len(payload) {
		return wire
	}
	CompressedMessages.Inc()
	return appendFrame(make([]byte, 0, 10+len(deflated)), wire[0]|Rsv1, deflated)
}

// CompressedWire is the frame as a client with permessage-deflate takes
// it: compressed by the first writer that needs it, and then shared.
func (f *Frame) CompressedWire() []byte {
	f.deflateOnce.Do(func() { f.deflated = deflateFrame(f.Wire) })
	return f.deflated
}

// Rsv1 marks a compressed message in its first frame (RFC 7692 §6).
const Rsv1 = 0x40

// HeaderLen is the length of a server frame's header.
func HeaderLen(wire []byte) int {
	switch wire[1] {
	case 126:
		return 4
	case 127:
		return 10
	}
	return 2
}
