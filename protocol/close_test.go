package protocol

import (
	"strconv"
	"strings"
	"testing"
)

// TestCloseCodes: the README says when the server sends each code.
func TestCloseCodes(t *testing.T) {
	for code, said := range map[int]string{
		CloseGoingAway:       "closes every\nconnection with **1001** (going away)",
		CloseProtocolError:   "body → close 1002",
		CloseInvalidPayload:  "Text that is not UTF-8 → close 1007",
		ClosePolicyViolation: "`rate_limit` → close 1008",
		CloseMessageTooBig:   "pass 4 KB beyond `max_message_size` → close 1009",
		CloseServiceRestart:  "removed are closed with **1012** (service restart)",
		CloseTryAgainLater:   "a\nWebSocket client closed with **1013** (try again later)",
		CloseGap:             "`close` them with **4001**",
		CloseTokenExpired:    "is closed with **4003** (token expired)",
	} {
		if !strings.Contains(said, strconv.Itoa(code)) {
			t.Errorf("code %d: the README says %q", code, said)
		}
		readmeSays(t, said)
	}
}
