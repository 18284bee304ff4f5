package redisws

import (
	"net/http"
	"strconv"
	"strings"
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

// withDeflateOffer is r as gorilla is to see it: gorilla agrees to the
// first permessage-deflate offer, whatever its parameters, always with
// deflateAgreed. So its Sec-WebSocket-Extensions becomes a bare
// permessage-deflate when one of the client's offers can be answered so
// (acceptableDeflate), and goes otherwise: the offers are declined and the
// connection is not compressed.
func withDeflateOffer(r *http.Request) *http.Request {
	offers := r.Header.Values("Sec-WebSocket-Extensions")
	if len(offers) == 0 {
		return r
	}
	r = r.WithContext(r.Context()) // a shallow copy
	r.Header = r.Header.Clone()
	r.Header.Del("Sec-WebSocket-Extensions")
	if acceptableDeflate(offers) {
		r.Header.Set("Sec-WebSocket-Extensions", "permessage-deflate")
	}
	return r
}

// acceptableDeflate tells whether one of the extension offers is a
// permessage-deflate that deflateAgreed answers as RFC 7692 §7.1 wants:
//   - server_no_context_takeover, client_no_context_takeover: no value;
//     the answer may name them whether offered or not.
//   - client_max_window_bits, with no value or 8 to 15: the answer need not
//     name it; the inflater takes any window.
//   - server_max_window_bits, any value: accepting it means naming it in
//     the answer, which gorilla does not, and Go's flate always uses a
//     32 KiB window: declined.
//   - any other parameter, a value where none belongs, a parameter twice:
//     declined, as the RFC requires.
func acceptableDeflate(headers []string) bool {
	for _, h := range headers {
		for _, offer := range splitUnquoted(h, ',') {
			params := splitUnquoted(offer, ';')
			if strings.TrimSpace(params[0]) == "permessage-deflate" && acceptableDeflateParams(params[1:]) {
				return true
			}
		}
	}
	return false
}

func acceptableDeflateParams(params []string) bool {
	seen := make(map[string]bool, len(params))
	for _, p := range params {
		name, value, hasValue := strings.Cut(p, "=")
		name, value = strings.TrimSpace(name), strings.Trim(strings.TrimSpace(value), `"`)
		switch {
		case seen[name]:
			return false
		case name == "server_no_context_takeover", name == "client_no_context_takeover":
			if hasValue {
				return false
			}
		case name == "client_max_window_bits":
			if hasValue && !windowBits(value) {
				return false
			}
		default:
			return false
		}
		seen[name] = true
	}
	return true
}

// windowBits tells whether v is a window size of RFC 7692: 8 to 15, in
// decimal without leading zeroes.
func windowBits(v string) bool {
	n, err := strconv.Atoi(v)
	return err == nil && n >= 8 && n <= 15 && strconv.Itoa(n) == v
}

// splitUnquoted splits s at every sep outside a quoted string.
func splitUnquoted(s string, sep byte) []string {
	var parts []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++ // an escaped character
		case c == '"':
			quoted = !quoted
		case !quoted && c == sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// readLimit is the frame bytes gorilla lets a client send in one message.
// Compressed data may be a little longer than what it inflates to (deflate
// stores incompressible input in blocks with 5-byte headers), so a client
// that compresses a message of max_message_size is not refused for that;
// messageReader bounds what it inflates to.
func readLimit(maxMessageSize int64, deflate bool) int64 {
	if !deflate {
		return maxMessageSize
	}
	return maxMessageSize + maxMessageSize/256 + 64
}
