package main

import (
	"fmt"
	"math"
	"os"
	"time"
)

// fanoutResult is the JSON line of a fanout run. Field names are stable.
type fanoutResult struct {
	Mode      string `json:"mode"`
	Label     string `json:"label,omitempty"`
	Transport string `json:"transport"` // of the subscribers: ws or sse (publishers are WebSocket)
	Compress  bool   `json:"compress"`  // the WebSockets offered permessage-deflate
	Payload   string `json:"payload"`   // after the header: x padding or a chat JSON message
	// CheckEvery: every CheckEvery-th WebSocket subscriber checks each
	// message (sequence, duplicates, latency); the others count frames.
	CheckEvery  int      `json:"check_every"`
	Time        string   `json:"time"`
	URLs        []string `json:"urls"`
	Subs        int      `json:"subs"`
	Pubs        int      `json:"pubs"`
	Rooms       int      `json:"rooms"`
	Slow        int      `json:"slow"`
	RateAsked   float64  `json:"rate_asked"`
	DurationS   float64  `json:"duration_s"`
	SizeBytes   int      `json:"size_bytes"`
	DrainMaxS   float64  `json:"drain_max_s"`
	ConnectRate float64  `json:"connect_rate"`
	Nofile      uint64   `json:"nofile"`
	RunID       string   `json:"run_id"`

	SubsConnected int `json:"subs_connected"`
	PubsConnected int `json:"pubs_connected"`
	connectStats

	Sent        uint64  `json:"sent"`
	SendWindowS float64 `json:"send_window_s"`
	SentPerS    float64 `json:"sent_per_s"`
	SendErrors  uint64  `json:"send_errors"`
	SendError   string  `json:"send_error_sample,omitempty"`

	deliveryCounts
	DeliveriesPerS    float64 `json:"deliveries_per_s"`
	DeliveriesWindowS float64 `json:"deliveries_window_s"`
	DrainUsedS        float64 `json:"drain_used_s"`
	Complete          bool    `json:"complete"`
	PubReceived       uint64  `json:"pub_received"`

	LatencyP50Ms  float64 `json:"latency_p50_ms"`
	LatencyP90Ms  float64 `json:"latency_p90_ms"`
	LatencyP99Ms  float64 `json:"latency_p99_ms"`
	LatencyMaxMs  float64 `json:"latency_max_ms"`
	LatencyMeanMs float64 `json:"latency_mean_ms"`

	RoomSubsMin   int        `json:"room_subs_min"`
	RoomSubsMax   int        `json:"room_subs_max"`
	RoomsWithLoss int        `json:"rooms_with_loss"`
	RoomStats     []roomStat `json:"room_stats,omitempty"`

	SlowConnected  int            `json:"slow_connected"`
	SlowClosed     int            `json:"slow_closed"`
	SlowOpen       int            `json:"slow_open"`
	SlowEnds       map[string]int `json:"slow_ends,omitempty"`
	SlowFramesRead uint64         `json:"slow_frames_read"`
	SlowCheckS     float64        `json:"slow_check_s"`

	SSE *sseCounts `json:"sse,omitempty"` // -transport sse: the streams' other events and lines

	SubDisconnects int            `json:"sub_disconnects"`
	SubCloseCodes  map[string]int `json:"sub_close_codes"`
	PubDisconnects int            `json:"pub_disconnects"`
	PubCloseCodes  map[string]int `json:"pub_close_codes"`
	// SubWireBytes is what the WebSocket subscribers read off their sockets
	// from the first send to the end of the drain: frames as sent, with
	// their headers, compressed or not (and the odd ping).
	SubWireBytes int64 `json:"sub_wire_bytes"`
	// NodeCPUS is the CPU seconds (user+system) of each -pids process over
	// the same time.
	NodeCPUS []float64 `json:"node_cpu_s,omitempty"`
	// NodeFanoutMeanMs is, with -admin, the nodes' own mean fan-out latency
	// over the same time (caddy_redis_ws_fanout_latency_seconds: Redis
	// receipt to the write of a batch, per batch): what of the latency is
	// the nodes', before the kernel and the subscribers.
	NodeFanoutMeanMs float64 `json:"node_fanout_mean_ms,omitempty"`
	RSSBeforeKB      int64   `json:"rss_before_kb"`
	RSSAfterKB       int64   `json:"rss_after_kb"`
	WallS            float64 `json:"wall_s"`
	Error            string  `json:"error,omitempty"`
}

// deliveryCounts is what the subscribers of a run received against what
// they should have, in its JSON line where these fields always stood.
type deliveryCounts struct {
	Expected   uint64  `json:"expected_deliveries"`
	Received   uint64  `json:"received_deliveries"`
	Loss       int64   `json:"loss"`
	LossPct    float64 `json:"loss_pct"`
	Duplicates uint64  `json:"duplicates"`
	Reordered  uint64  `json:"reordered"`
	Foreign    uint64  `json:"foreign"`    // of another run, or an unknown sender
	CrossRoom  uint64  `json:"cross_room"` // of this run, from a room the subscriber is not in
	Malformed  uint64  `json:"malformed"`
}

// checkCounts is what one subscriber's checks refused or noted.
type checkCounts struct {
	dups      uint64
	reordered uint64
	foreign   uint64 // of another run, or an unknown sender
	crossRoom uint64 // of this run, from a room the subscriber is not in
	malformed uint64
}

// add counts one subscriber's deliveries and checks.
func (d *deliveryCounts) add(c *checkCounts, received uint64) {
	d.Received += received
	d.Duplicates += c.dups
	d.Reordered += c.reordered
	d.Foreign += c.foreign
	d.CrossRoom += c.crossRoom
	d.Malformed += c.malformed
}

// countLoss sets Loss and LossPct from Expected and Received.
func (d *deliveryCounts) countLoss() {
	d.Loss = int64(d.Expected) - int64(d.Received)
	if d.Expected > 0 {
		d.LossPct = round3(100 * float64(d.Loss) / float64(d.Expected))
	}
}

// countSends adds up what the publishers sent in the send window from
// sendStart to sendEnd and returns the time of the first send
// (math.MaxInt64 when none was sent).
func (res *fanoutResult) countSends(pubs []*publisher, sendStart, sendEnd time.Time) (firstSend int64) {
	firstSend = math.MaxInt64
	for _, p := range pubs {
		res.Sent += p.sent
		res.SendErrors += p.errs
		if p.sendErr != nil && res.SendError == "" {
			res.SendError = p.sendErr.Error()
		}
		if p.sent > 0 {
			firstSend = min(firstSend, p.firstNs)
		}
	}
	res.SendWindowS = round3(sendEnd.Sub(sendStart).Seconds())
	if res.SendWindowS > 0 {
		res.SentPerS = round3(float64(res.Sent) / sendEnd.Sub(sendStart).Seconds())
	}
	return firstSend
}

// countDeliveries adds up what the subscribers received, in all and per
// room, with its latency and throughput, and how the connections that ended
// early ended.
func (res *fanoutResult) countDeliveries(c *config, subs []*subscriber, pubs []*publisher, firstSend int64) {
	var h hist
	var lastRecv int64
	for _, s := range subs {
		h.merge(&s.h)
		res.add(&s.checkCounts, s.received.Load())
		lastRecv = max(lastRecv, s.lastNs.Load())
		if s.stream != nil {
			if res.SSE == nil {
				res.SSE = &sseCounts{}
			}
			res.SSE.add(&s.sse)
			res.SSE.Streams++
		}
		if s.dead.Load() {
			res.SubDisconnects++
			res.SubCloseCodes[closeKey(s.endErr)]++
		}
	}
	for _, p := range pubs {
		res.PubReceived += p.received.Load()
		if p.dead.Load() {
			res.PubDisconnects++
			res.PubCloseCodes[closeKey(p.endErr)]++
		}
	}
	stats := roomStats(c, subs, pubs)
	res.RoomSubsMin = len(subs)
	for _, st := range stats {
		res.Expected += st.Expected
		res.RoomSubsMin = min(res.RoomSubsMin, st.Subs)
		res.RoomSubsMax = max(res.RoomSubsMax, st.Subs)
		if st.Loss != 0 {
			res.RoomsWithLoss++
		}
	}
	if c.rooms > 0 {
		res.RoomStats = stats
	}
	res.countLoss()
	if lastRecv > firstSend && firstSend != math.MaxInt64 {
		w := float64(lastRecv-firstSend) / 1e9
		res.DeliveriesWindowS = round3(w)
		res.DeliveriesPerS = round3(float64(res.Received) / w)
	}
	res.LatencyP50Ms = usToMs(h.quantile(0.50))
	res.LatencyP90Ms = usToMs(h.quantile(0.90))
	res.LatencyP99Ms = usToMs(h.quantile(0.99))
	res.LatencyMaxMs = usToMs(h.maxUs)
	res.LatencyMeanMs = round3(h.meanUs() / 1000)
}

func printFanout(r *fanoutResult) {
	w := os.Stderr
	fmt.Fprintf(w, "\n== fanout: %d subs, %d pubs over %d node(s), %d B, asked %.0f msg/s for %.1fs ==\n",
		r.Subs, r.Pubs, len(r.URLs), r.SizeBytes, r.RateAsked, r.DurationS)
	if r.Label != "" {
		fmt.Fprintf(w, "label       %s\n", r.Label)
	}
	fmt.Fprintf(w, "transport   subscribers %s, publishers ws\n", r.Transport)
	fmt.Fprintf(w, "connect     %d/%d subs, %d/%d pubs, %d errors; handshake p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
		r.SubsConnected, r.Subs, r.PubsConnected, r.Pubs, r.ConnectErrors, r.ConnectP50Ms, r.ConnectP99Ms, r.ConnectMaxMs)
	fmt.Fprintf(w, "sent        %d in %.2fs = %.1f msg/s, %d send errors\n", r.Sent, r.SendWindowS, r.SentPerS, r.SendErrors)
	fmt.Fprintf(w, "deliveries  %d of %d expected (loss %d = %.3f%%), %d duplicates, %d reordered, %d foreign, %d malformed\n",
		r.Received, r.Expected, r.Loss, r.LossPct, r.Duplicates, r.Reordered, r.Foreign, r.Malformed)
	if r.Rooms > 0 {
		fmt.Fprintf(w, "rooms       %d, %d to %d subscribers each, %d with loss, %d cross-room deliveries\n",
			r.Rooms, r.RoomSubsMin, r.RoomSubsMax, r.RoomsWithLoss, r.CrossRoom)
	}
	fmt.Fprintf(w, "throughput  %.0f deliveries/s (received / (last receipt - first send) = %.2fs); drain used %.2fs, complete=%v\n",
		r.DeliveriesPerS, r.DeliveriesWindowS, r.DrainUsedS, r.Complete)
	fmt.Fprintf(w, "latency     p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms, mean %.2f ms\n",
		r.LatencyP50Ms, r.LatencyP90Ms, r.LatencyP99Ms, r.LatencyMaxMs, r.LatencyMeanMs)
	if e := r.SSE; e != nil {
		fmt.Fprintf(w, "sse         %d streams: %d pings, %d id-only events, %d message events with an id (%d going backwards), %d binary (%d bad base64), %d other events, %d unknown fields\n",
			e.Streams, e.Pings, e.IDOnly, e.WithID, e.IDBackwards, e.Binary, e.BadBase64, e.Other, e.UnknownLines)
	}
	fmt.Fprintf(w, "disconnects subs %d %s, pubs %d %s\n", r.SubDisconnects, codes(r.SubCloseCodes), r.PubDisconnects, codes(r.PubCloseCodes))
	if r.Slow > 0 {
		fmt.Fprintf(w, "slow        %d/%d connected; at the end %d closed by the server, %d still open %s; %d frames read in %.1fs\n",
			r.SlowConnected, r.Slow, r.SlowClosed, r.SlowOpen, codes(r.SlowEnds), r.SlowFramesRead, r.SlowCheckS)
	}
	if r.Received > 0 && r.SubWireBytes > 0 {
		fmt.Fprintf(w, "wire        %d bytes read by the subscribers = %.0f per delivery (compression offered: %v)\n",
			r.SubWireBytes, float64(r.SubWireBytes)/float64(r.Received), r.Compress)
	}
	if len(r.NodeCPUS) > 0 {
		fmt.Fprintf(w, "server CPU  %v s over the send and drain\n", r.NodeCPUS)
	}
	if r.NodeFanoutMeanMs > 0 {
		fmt.Fprintf(w, "server lat  %.2f ms mean fan-out latency in the nodes (Redis receipt to write)\n", r.NodeFanoutMeanMs)
	}
	if r.RSSAfterKB >= 0 {
		fmt.Fprintf(w, "server RSS  before %d KB, after %d KB (sum over pids)\n", r.RSSBeforeKB, r.RSSAfterKB)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "error       %s\n", r.Error)
	}
	fmt.Fprintf(w, "wall        %.1fs\n", r.WallS)
}
