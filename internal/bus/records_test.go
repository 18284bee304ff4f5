package bus

import (
	"fmt"
	"testing"
)

// Recorded frames go to Redis by runs of one channel and one history, at
// most maxRecordRun long; live frames one by one, in the order queued.
func TestRecordRuns(t *testing.T) {
	h1, h2 := &HistoryOptions{Size: 1}, &HistoryOptions{Size: 2}
	var batch []OutMsg
	add := func(ch string, h *HistoryOptions, n int) {
		for range n {
			batch = append(batch, OutMsg{Channel: ch, History: h})
		}
	}
	add("a", h1, MaxRecordRun+1)
	add("a", nil, 2)
	add("a", h1, 1)
	add("b", h1, 1)
	add("b", h2, 1)
	got := fmt.Sprint(RecordRuns(batch))
	n := MaxRecordRun
	want := fmt.Sprint([]SendRun{{0, n}, {n, n + 1}, {n + 1, n + 2}, {n + 2, n + 3}, {n + 3, n + 4}, {n + 4, n + 5}, {n + 5, n + 6}})
	if got != want {
		t.Fatalf("runs %s, want %s", got, want)
	}
}

// A frame with an idempotency key is a run of its own.
func TestRecordRunsIdempotent(t *testing.T) {
	h := &HistoryOptions{Size: 1}
	batch := []OutMsg{
		{Channel: "a", History: h}, {Channel: "a", History: h, Ack: NewPublishAck("k")},
		{Channel: "a", History: h}, {Channel: "a", History: h},
	}
	if got, want := fmt.Sprint(RecordRuns(batch)), fmt.Sprint([]SendRun{{0, 1}, {1, 2}, {2, 4}}); got != want {
		t.Fatalf("runs %s, want %s", got, want)
	}
}
