package redisws

import (
	"bytes"
	"compress/flate"
	"io"
	"sync"
)

// Compression sends messages to the clients that offer permessage-deflate
// (RFC 7692; every browser does) compressed, without context takeover: each
// message is compressed alone, once per node, and that one frame serves
// every such client. Clients that do not offer it get plain frames.
type Compression struct {
	// Messages shorter than this many bytes are sent uncompressed: deflate
	// saves little on them. Default: 256.
	MinSize int `json:"min_size,omitempty"`
}

// defaultCompressMinSize: deflate shrinks JSON chat messages of 73 bytes by
// 1%, of 128 bytes by 15%, of 256 bytes by 30% and of 1 KiB by 55%. Servers
// that compress for each client on its own (Node's ws, Socket.IO) default to
// 1 KiB to spare the CPU; here the CPU is spent once per message and node,
// whatever the number of clients, so messages from 256 bytes are worth it.
const defaultCompressMinSize = 256

func (c *Compression) setDefaults() {
	if c.MinSize == 0 {
		c.MinSize = defaultCompressMinSize
	}
}

// deflateAgreed is the line gorilla v1.5.3 writes into its handshake
// response when it agreed to permessage-deflate, and only then.
var deflateAgreed = []byte("\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n")

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
	payload := wire[headerLen(wire):]
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
	metrics.compressions.Inc()
	return appendFrame(make([]byte, 0, 10+len(deflated)), wire[0]|rsv1, deflated)
}

// compressedWire is the frame as a client with permessage-deflate takes
// it: compressed by the first writer that needs it, and then shared.
func (f *frame) compressedWire() []byte {
	f.deflateOnce.Do(func() { f.deflated = deflateFrame(f.wire) })
	return f.deflated
}

// rsv1 marks a compressed message in its first frame (RFC 7692 §6).
const rsv1 = 0x40

// headerLen is the length of a server frame's header.
func headerLen(wire []byte) int {
	switch wire[1] {
	case 126:
		return 4
	case 127:
		return 10
	}
	return 2
}

// readLimit is the frame bytes gorilla lets a client send in one message.
// Compressed data may be a little longer than what it inflates to (deflate
// stores incompressible input in blocks with 5-byte headers), so a client
// that compresses a message of max_message_size is not refused for that;
// readMessage bounds what it inflates to.
func readLimit(maxMessageSize int64, deflate bool) int64 {
	if !deflate {
		return maxMessageSize
	}
	return maxMessageSize + maxMessageSize/256 + 64
}
