package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"time"
)

// postResult is the JSON line of a post run. Field names are stable.
type postResult struct {
	Mode      string   `json:"mode"`
	Label     string   `json:"label,omitempty"`
	Time      string   `json:"time"`
	URLs      []string `json:"urls"`
	Clients   int      `json:"clients"`
	SizeBytes int      `json:"size_bytes"`
	DurationS float64  `json:"duration_s"`           // -duration
	RateAsked float64  `json:"rate_asked,omitempty"` // -rate: posts/s in all, paced; 0: as fast as they can
	MaxPosts  int      `json:"max_posts,omitempty"`  // -posts: at most this many requests in all
	RunID     string   `json:"run_id"`

	Connections int64             `json:"connections_opened"` // TCP connections dialled (one per client when keep-alive holds)
	Requests    uint64            `json:"requests"`           // POSTs sent
	OK          uint64            `json:"ok"`                 // answered 200
	OKPerS      float64           `json:"ok_per_s"`           // ok / window
	WindowS     float64           `json:"window_s"`           // first send until the last answer
	Non200      uint64            `json:"non_200"`
	Statuses    map[string]uint64 `json:"statuses,omitempty"` // non-200 answers by status
	Errors      uint64            `json:"errors"`             // no answer (transport errors, timeouts)
	ErrorMsg    map[string]int    `json:"error_samples,omitempty"`

	LatencyP50Ms  float64 `json:"latency_p50_ms"` // of the 200 answers: send until the body was read
	LatencyP90Ms  float64 `json:"latency_p90_ms"`
	LatencyP99Ms  float64 `json:"latency_p99_ms"`
	LatencyMaxMs  float64 `json:"latency_max_ms"`
	LatencyMeanMs float64 `json:"latency_mean_ms"`

	// From the 200 bodies {"channel":..., "offset":N, "epoch":...}.
	Channels         []string `json:"channels,omitempty"`
	Epochs           []string `json:"epochs,omitempty"`
	WithOffset       uint64   `json:"with_offset"` // 200s that named an offset (routes with history)
	OffsetMin        int64    `json:"offset_min"`
	OffsetMax        int64    `json:"offset_max"`
	OffsetDuplicates uint64   `json:"offset_duplicates"` // an offset answered more than once
	OffsetGaps       int64    `json:"offset_gaps"`       // offsets in min..max that no 200 named
	BadBodies        uint64   `json:"bad_bodies"`        // 200s whose body named no channel

	WallS float64 `json:"wall_s"`
	Error string  `json:"error,omitempty"`
}

// postStats is one client's tally (merged at the end; no locks).
type postStats struct {
	requests, ok, non200, errs, badBodies, withOffset uint64
	status                                            map[int]uint64
	errMsgs                                           map[string]int
	h                                                 hist // latency of the 200s, µs
	offsets                                           []int64
	epochs, channels                                  []string // distinct, in order seen
}

// add records one request's outcome: its status (0 with err), its
// latency and, for a 200, its body.
func (p *postStats) add(status int, lat time.Duration, body []byte, err error) {
	p.requests++
	if err != nil {
		p.errs++
		if p.errMsgs == nil {
			p.errMsgs = map[string]int{}
		}
		k := err.Error()
		if len(k) > 120 {
			k = k[:120]
		}
		if _, ok := p.errMsgs[k]; ok || len(p.errMsgs) < maxErrKeys {
			p.errMsgs[k]++
		} else {
			p.errMsgs["other"]++
		}
		return
	}
	if status != http.StatusOK {
		p.non200++
		if p.status == nil {
			p.status = map[int]uint64{}
		}
		p.status[status]++
		return
	}
	p.ok++
	p.h.record(uint64(max(lat, 0) / time.Microsecond))
	ch, ok := jsonStringField(body, `"channel":"`)
	if !ok {
		p.badBodies++
		return
	}
	p.channels = addDistinct(p.channels, ch)
	if off, ok := jsonIntField(body, `"offset":`); ok {
		p.withOffset++
		p.offsets = append(p.offsets, off)
		if ep, ok := jsonStringField(body, `"epoch":"`); ok {
			p.epochs = addDistinct(p.epochs, ep)
		}
	}
}

// addDistinct appends s (a slice of a body) unless list holds it already;
// only a new one is copied.
func addDistinct(list []string, s []byte) []string {
	for _, x := range list {
		if x == string(s) {
			return list
		}
	}
	return append(list, string(s))
}

// jsonStringField is the value of a string field of a flat JSON object
// without escapes in it (the route's answers), found by its `"name":"` prefix.
func jsonStringField(b []byte, prefix string) ([]byte, bool) {
	i := bytes.Index(b, []byte(prefix))
	if i < 0 {
		return nil, false
	}
	v := b[i+len(prefix):]
	j := bytes.IndexByte(v, '"')
	if j < 0 || bytes.IndexByte(v[:j], '\\') >= 0 {
		return nil, false
	}
	return v[:j], true
}

// jsonIntField is the value of a non-negative integer field, by its `"name":` prefix.
func jsonIntField(b []byte, prefix string) (int64, bool) {
	i := bytes.Index(b, []byte(prefix))
	if i < 0 {
		return 0, false
	}
	v := b[i+len(prefix):]
	j := 0
	for j < len(v) && v[j] >= '0' && v[j] <= '9' {
		j++
	}
	if j == 0 || j > 18 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(v[:j]), 10, 64)
	return n, err == nil
}

// merge adds up the clients' tallies into res.
func (res *postResult) merge(all []*postStats) {
	var h hist
	var offsets []int64
	res.Statuses = map[string]uint64{}
	res.ErrorMsg = map[string]int{}
	for _, p := range all {
		res.Requests += p.requests
		res.OK += p.ok
		res.Non200 += p.non200
		res.Errors += p.errs
		res.BadBodies += p.badBodies
		res.WithOffset += p.withOffset
		for st, n := range p.status {
			res.Statuses[strconv.Itoa(st)] += n
		}
		for k, n := range p.errMsgs {
			res.ErrorMsg[k] += n
		}
		h.merge(&p.h)
		offsets = append(offsets, p.offsets...)
		for _, e := range p.epochs {
			res.Epochs = addDistinct(res.Epochs, []byte(e))
		}
		for _, c := range p.channels {
			res.Channels = addDistinct(res.Channels, []byte(c))
		}
	}
	if len(res.Statuses) == 0 {
		res.Statuses = nil
	}
	if len(res.ErrorMsg) == 0 {
		res.ErrorMsg = nil
	}
	if len(offsets) > 0 {
		slices.Sort(offsets)
		distinct := int64(1)
		for i := 1; i < len(offsets); i++ {
			if offsets[i] == offsets[i-1] {
				res.OffsetDuplicates++
			} else {
				distinct++
			}
		}
		res.OffsetMin, res.OffsetMax = offsets[0], offsets[len(offsets)-1]
		res.OffsetGaps = res.OffsetMax - res.OffsetMin + 1 - distinct
	}
	res.LatencyP50Ms = usToMs(h.quantile(0.50))
	res.LatencyP90Ms = usToMs(h.quantile(0.90))
	res.LatencyP99Ms = usToMs(h.quantile(0.99))
	res.LatencyMaxMs = usToMs(h.maxUs)
	res.LatencyMeanMs = round3(h.meanUs() / 1000)
}

func printPost(r *postResult) {
	w := os.Stderr
	fmt.Fprintf(w, "\n== post: %d client(s), %d B bodies, %.1fs ==\n", r.Clients, r.SizeBytes, r.DurationS)
	if r.Label != "" {
		fmt.Fprintf(w, "label       %s\n", r.Label)
	}
	fmt.Fprintf(w, "requests    %d in %.2fs over %d connection(s): %d answered 200 (%.0f/s), %d other %s, %d errors\n",
		r.Requests, r.WindowS, r.Connections, r.OK, r.OKPerS, r.Non200, codesU(r.Statuses), r.Errors)
	for k, v := range r.ErrorMsg {
		fmt.Fprintf(w, "  error x%d: %s\n", v, k)
	}
	fmt.Fprintf(w, "latency     p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms, mean %.2f ms (200s)\n",
		r.LatencyP50Ms, r.LatencyP90Ms, r.LatencyP99Ms, r.LatencyMaxMs, r.LatencyMeanMs)
	fmt.Fprintf(w, "answers     channels %v", r.Channels)
	if r.WithOffset > 0 {
		fmt.Fprintf(w, ", %d with an offset: %d..%d, %d duplicates, %d gaps, epochs %v", r.WithOffset, r.OffsetMin, r.OffsetMax, r.OffsetDuplicates, r.OffsetGaps, r.Epochs)
	}
	fmt.Fprintf(w, ", %d bad bodies\n", r.BadBodies)
	if r.Error != "" {
		fmt.Fprintf(w, "error       %s\n", r.Error)
	}
	fmt.Fprintf(w, "wall        %.1fs\n", r.WallS)
}

func codesU(m map[string]uint64) string {
	c := make(map[string]int, len(m))
	for k, v := range m {
		c[k] = int(v)
	}
	return codes(c)
}
