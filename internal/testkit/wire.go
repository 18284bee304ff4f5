package testkit

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"io"
	"strings"
	"testing"
)

// ClientFrame is one client frame on the wire; mask false leaves it
// unmasked, which clients must never do; rsv sets RSV bits (0x70); length
// overrides the declared payload length when >= 0.
func ClientFrame(fin bool, rsv, opcode byte, payload []byte, mask bool, length int64) []byte {
	b0 := rsv | opcode
	if fin {
		b0 |= 0x80
	}
	if length < 0 {
		length = int64(len(payload))
	}
	var maskBit byte
	if mask {
		maskBit = 0x80
	}
	hdr := []byte{b0}
	switch {
	case length <= 125:
		hdr = append(hdr, maskBit|byte(length))
	case length <= 0xffff:
		hdr = binary.BigEndian.AppendUint16(append(hdr, maskBit|126), uint16(length))
	default:
		hdr = binary.BigEndian.AppendUint64(append(hdr, maskBit|127), uint64(length))
	}
	body := append([]byte(nil), payload...)
	if mask {
		key := []byte{1, 2, 3, 4}
		hdr = append(hdr, key...)
		for i := range body {
			body[i] ^= key[i%4]
		}
	}
	return append(hdr, body...)
}

// InflatePayload inflates the payload of a compressed frame.
func InflatePayload(t testing.TB, body []byte) string {
	t.Helper()
	got, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(body), strings.NewReader("\x00\x00\xff\xff\x01\x00\x00\xff\xff"))))
	if err != nil {
		t.Fatalf("inflating: %v", err)
	}
	return string(got)
}
