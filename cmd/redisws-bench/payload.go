package main

import (
	"errors"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/chatjson"
)

// Payload layout: a fixed-width ASCII header, then ASCII padding or (with
// -payload chat) a JSON chat message up to -size bytes, so that every frame
// is valid UTF-8 text.
//
//	offset  len  field
//	0       3    magic "RWB"
//	3       1    '|'
//	4       8    run id, lower-case hex (filters messages of other runs)
//	12      1    '|'
//	13      6    sender id, decimal, zero-padded
//	19      1    '|'
//	20      10   sequence number, decimal, zero-padded (starts at 1)
//	30      1    '|'
//	31      19   send time, unix nanoseconds, decimal, zero-padded
//	50      1    '|'
//	51      ...  padding 'x'
const (
	hdrMagic   = "RWB"
	offRun     = 4
	offSender  = 13
	offSeq     = 20
	offTime    = 31
	headerSize = 51
	maxSender  = 999999
	maxSeq     = 9999999999
)

var errMalformed = errors.New("malformed payload")

type header struct {
	run    uint32
	sender uint32
	seq    uint64
	sentNs int64
}

// newPayload returns a buffer of size bytes with the fixed parts filled in,
// padded with 'x'.
func newPayload(size int, run uint32, sender int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = 'x'
	}
	return withHeader(b, run, sender)
}

// newChatPayload is newPayload with a JSON chat message of the sender's
// after the header; size is at least headerSize+chatjson.MinSize.
func newChatPayload(size int, run uint32, sender int) []byte {
	b := make([]byte, headerSize, size)
	b = append(b, chatjson.Message(size-headerSize, sender)...)
	return withHeader(b, run, sender)
}

// withHeader writes the fixed parts of the header into b.
func withHeader(b []byte, run uint32, sender int) []byte {
	copy(b, hdrMagic)
	b[3], b[12], b[19], b[30], b[50] = '|', '|', '|', '|', '|'
	putHex(b[offRun:offRun+8], uint64(run))
	putDec(b[offSender:offSender+6], uint64(sender))
	return b
}

// stamp writes the sequence number and send time into a payload buffer.
func stamp(b []byte, seq uint64, sentNs int64) {
	putDec(b[offSeq:offSeq+10], seq)
	putDec(b[offTime:offTime+19], uint64(sentNs))
}

func parseHeader(b []byte) (h header, err error) {
	if len(b) < headerSize || string(b[:3]) != hdrMagic || b[3] != '|' || b[12] != '|' ||
		b[19] != '|' || b[30] != '|' || b[50] != '|' {
		return h, errMalformed
	}
	run, ok1 := getHex(b[offRun : offRun+8])
	snd, ok2 := getDec(b[offSender : offSender+6])
	seq, ok3 := getDec(b[offSeq : offSeq+10])
	ts, ok4 := getDec(b[offTime : offTime+19])
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return h, errMalformed
	}
	return header{run: uint32(run), sender: uint32(snd), seq: seq, sentNs: int64(ts)}, nil
}

func putDec(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
}

func putHex(dst []byte, v uint64) {
	const digits = "0123456789abcdef"
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = digits[v&15]
		v >>= 4
	}
}

func getDec(src []byte) (uint64, bool) {
	var v uint64
	for _, c := range src {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

func getHex(src []byte) (uint64, bool) {
	var v uint64
	for _, c := range src {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}
