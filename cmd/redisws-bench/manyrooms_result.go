package main

import (
	"fmt"
	"io"
	"os"
)

// manyroomsResult is the JSON line of a manyrooms run. Field names are stable.
type manyroomsResult struct {
	Mode        string   `json:"mode"`
	Server      string   `json:"server"` // redisws or centrifugo
	Label       string   `json:"label,omitempty"`
	Time        string   `json:"time"`
	URLs        []string `json:"urls"`
	Conns       int      `json:"conns"`
	PerConn     int      `json:"per_conn"`
	Rooms       int      `json:"rooms"`
	Pubs        int      `json:"pubs"`
	RoomRate    float64  `json:"room_rate"` // messages per second per room
	DurationS   float64  `json:"duration_s"`
	SizeBytes   int      `json:"size_bytes"`
	ConnectRate float64  `json:"connect_rate"`
	Nofile      uint64   `json:"nofile"`
	RunID       string   `json:"run_id"`

	connectStats
	Connected        int     `json:"connected"`
	Subscribed       int     `json:"subscribed"` // subscriptions confirmed before publishing
	SubscribeErrors  int     `json:"subscribe_errors"`
	SubscribeError   string  `json:"subscribe_error_sample,omitempty"`
	SubscribePhaseS  float64 `json:"subscribe_phase_s"` // first connect to the last confirmation
	SubscribeP50Ms   float64 `json:"subscribe_p50_ms"`  // a subscribe command to its answer
	SubscribeP99Ms   float64 `json:"subscribe_p99_ms"`
	SubscribeMaxMs   float64 `json:"subscribe_max_ms"`
	PubsConnected    int     `json:"pubs_connected"`
	PubConnectErrors int     `json:"pub_connect_errors"`

	Sent            uint64  `json:"sent"`
	SendWindowS     float64 `json:"send_window_s"`
	SentPerS        float64 `json:"sent_per_s"`
	SendErrors      uint64  `json:"send_errors"`
	SendError       string  `json:"send_error_sample,omitempty"`
	PublishAnswered uint64  `json:"publish_answered"`
	PublishRefused  uint64  `json:"publish_refused"`
	PublishRefusal  string  `json:"publish_refusal_sample,omitempty"`

	deliveryCounts
	ExpectedPerS      float64 `json:"expected_deliveries_per_s"` // expected over -duration
	DeliveriesPerS    float64 `json:"deliveries_per_s"`          // received over the first send to the last delivery
	DeliveriesWindowS float64 `json:"deliveries_window_s"`
	DrainUsedS        float64 `json:"drain_used_s"`
	Complete          bool    `json:"complete"`

	LatencyP50Ms float64 `json:"latency_p50_ms"`
	LatencyP99Ms float64 `json:"latency_p99_ms"`
	LatencyMaxMs float64 `json:"latency_max_ms"`

	SubDisconnects int            `json:"sub_disconnects"`
	SubCloseCodes  map[string]int `json:"sub_close_codes"`
	PubDisconnects int            `json:"pub_disconnects"`
	PubCloseCodes  map[string]int `json:"pub_close_codes"`

	// Per node, in -urls order (with -pids, one per URL): VmRSS before any
	// connection, once every subscription was confirmed, and after the drain.
	RSSBeforeKB     []int64 `json:"rss_before_kb,omitempty"`
	RSSSubscribedKB []int64 `json:"rss_subscribed_kb,omitempty"`
	RSSAfterKB      []int64 `json:"rss_after_kb,omitempty"`
	// BytesPerSubscription: the summed RSS growth from before to subscribed
	// over the subscriptions confirmed (connections' own cost included).
	BytesPerSubscription float64 `json:"bytes_per_subscription,omitempty"`
	// Per node: its write system calls (syscw) from the first send to the
	// end of the drain, the deliveries its connections got, and the ratio.
	NodeWrites        []int64   `json:"node_writes,omitempty"`
	NodeDeliveries    []uint64  `json:"node_deliveries,omitempty"`
	WritesPerDelivery []float64 `json:"writes_per_delivery,omitempty"`
	NodeCPUS          []float64 `json:"node_cpu_s,omitempty"`
	// ToolCPUS is the load tool's own CPU time over the same window: on
	// one machine it shares the cores with the nodes and Redis.
	ToolCPUS float64 `json:"tool_cpu_s"`
	WallS    float64 `json:"wall_s"`
	Error    string  `json:"error,omitempty"`
}

// count adds up what the publishers sent and the connections received.
func (res *manyroomsResult) count(c *config, subs []*roomsConn, pubs []*roomsPub, sentIn []uint64) {
	firstSend := int64(0)
	for _, p := range pubs {
		res.Sent += p.sent
		res.SendErrors += p.errs
		if p.sendErr != nil && res.SendError == "" {
			res.SendError = p.sendErr.Error()
		}
		res.PublishAnswered += p.answered.Load()
		res.PublishRefused += p.refused.Load()
		if s, ok := p.refusal.Load().(string); ok && res.PublishRefusal == "" {
			res.PublishRefusal = s
		}
		if p.sent > 0 && (firstSend == 0 || p.firstNs < firstSend) {
			firstSend = p.firstNs
		}
		if p.dead.Load() {
			res.PubDisconnects++
			res.PubCloseCodes[closeKey(p.endErr)]++
		}
	}
	if res.SendWindowS > 0 {
		res.SentPerS = round3(float64(res.Sent) / res.SendWindowS)
	}
	var h, sh hist
	var lastRecv int64
	for _, rc := range subs {
		h.merge(&rc.h)
		sh.merge(&rc.subLat)
		res.SubscribeErrors += rc.subErrs
		if rc.subErr != "" && res.SubscribeError == "" {
			res.SubscribeError = rc.subErr
		}
		for _, r := range rc.rooms {
			res.Expected += sentIn[r]
		}
		res.add(&rc.checkCounts, rc.received.Load())
		lastRecv = max(lastRecv, rc.lastNs.Load())
		if rc.dead.Load() {
			res.SubDisconnects++
			res.SubCloseCodes[closeKey(rc.endErr)]++
		}
	}
	res.countLoss()
	res.ExpectedPerS = round3(float64(res.Expected) / c.duration.Seconds())
	if firstSend > 0 && lastRecv > firstSend {
		w := float64(lastRecv-firstSend) / 1e9
		res.DeliveriesWindowS = round3(w)
		res.DeliveriesPerS = round3(float64(res.Received) / w)
	}
	res.LatencyP50Ms, res.LatencyP99Ms, res.LatencyMaxMs = usToMs(h.quantile(0.5)), usToMs(h.quantile(0.99)), usToMs(h.maxUs)
	res.SubscribeP50Ms, res.SubscribeP99Ms, res.SubscribeMaxMs = usToMs(sh.quantile(0.5)), usToMs(sh.quantile(0.99)), usToMs(sh.maxUs)
}

// nodeCosts fills the per-node memory and write figures from the readings
// before (w0, cpu0) and after (w1, cpu1) the measured window.
func (res *manyroomsResult) nodeCosts(c *config, subs []*roomsConn, w0, w1, cpu0, cpu1 []int64) {
	if len(c.pids) == 0 {
		return
	}
	var before, after int64
	for i := range c.pids {
		before += res.RSSBeforeKB[i]
		after += res.RSSSubscribedKB[i]
	}
	if res.Subscribed > 0 && before > 0 && after > 0 {
		res.BytesPerSubscription = round3(float64(after-before) * 1024 / float64(res.Subscribed))
	}
	res.NodeCPUS, res.NodeWrites, res.WritesPerDelivery = nil, nil, nil
	res.NodeDeliveries = make([]uint64, len(c.pids))
	for _, rc := range subs {
		res.NodeDeliveries[rc.node] += rc.received.Load()
	}
	for i := range c.pids {
		res.NodeCPUS = append(res.NodeCPUS, round3(float64(cpu1[i]-cpu0[i])/userHZ))
		w := int64(-1)
		if w0[i] >= 0 && w1[i] >= 0 {
			w = w1[i] - w0[i]
		}
		res.NodeWrites = append(res.NodeWrites, w)
		per := -1.0
		if w >= 0 && res.NodeDeliveries[i] > 0 {
			per = round3(float64(w) / float64(res.NodeDeliveries[i]))
		}
		res.WritesPerDelivery = append(res.WritesPerDelivery, per)
	}
}

func printManyrooms(r *manyroomsResult) {
	w := os.Stderr
	fmt.Fprintf(w, "\n== manyrooms (%s): %d connections × %d of %d rooms over %d node(s), %d publishers, %g msg/s per room, %d B ==\n",
		r.Server, r.Conns, r.PerConn, r.Rooms, len(r.URLs), r.Pubs, r.RoomRate, r.SizeBytes)
	fmt.Fprintf(w, "connect     %d/%d, %d errors; handshake p50 %.1f ms, p99 %.1f ms\n", r.Connected, r.Conns, r.ConnectErrors, r.ConnectP50Ms, r.ConnectP99Ms)
	fmt.Fprintf(w, "subscribe   %d confirmed, %d refused %s; answer p50 %.2f ms, p99 %.2f ms, max %.2f ms; all in %.1fs\n",
		r.Subscribed, r.SubscribeErrors, r.SubscribeError, r.SubscribeP50Ms, r.SubscribeP99Ms, r.SubscribeMaxMs, r.SubscribePhaseS)
	fmt.Fprintf(w, "sent        %d in %.2fs = %.0f msg/s, %d send errors, %d answered, %d refused %s\n",
		r.Sent, r.SendWindowS, r.SentPerS, r.SendErrors, r.PublishAnswered, r.PublishRefused, r.PublishRefusal)
	fmt.Fprintf(w, "deliveries  %d of %d (loss %d = %.3f%%), %d duplicates, %d reordered, %d cross-room, %d foreign, %d malformed\n",
		r.Received, r.Expected, r.Loss, r.LossPct, r.Duplicates, r.Reordered, r.CrossRoom, r.Foreign, r.Malformed)
	fmt.Fprintf(w, "rate        %.0f deliveries/s received, %.0f expected; drain used %.2fs, complete %v\n",
		r.DeliveriesPerS, r.ExpectedPerS, r.DrainUsedS, r.Complete)
	fmt.Fprintf(w, "latency     p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", r.LatencyP50Ms, r.LatencyP99Ms, r.LatencyMaxMs)
	fmt.Fprintf(w, "disconnects subs %d %s, pubs %d %s\n", r.SubDisconnects, codes(r.SubCloseCodes), r.PubDisconnects, codes(r.PubCloseCodes))
	if len(r.RSSBeforeKB) > 0 {
		fmt.Fprintf(w, "node RSS    before %v KB, subscribed %v KB, after %v KB: %.0f B per subscription\n",
			r.RSSBeforeKB, r.RSSSubscribedKB, r.RSSAfterKB, r.BytesPerSubscription)
		fmt.Fprintf(w, "node writes %v syscalls for %v deliveries = %v per delivery; CPU %v s (load tool %.2f s)\n",
			r.NodeWrites, r.NodeDeliveries, r.WritesPerDelivery, r.NodeCPUS, r.ToolCPUS)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "error       %s\n", r.Error)
	}
	fmt.Fprintf(w, "wall        %.1fs\n", r.WallS)
}

// manyroomsTable prints manyrooms runs as a Markdown table.
func manyroomsTable(w io.Writer, rs []manyroomsResult) {
	fmt.Fprintln(w, "| server | connections × rooms each (of rooms) | msg/s per room | deliveries/s expected | received/s | loss | dup | p50 ms | p99 ms | max ms | subscribe p50 / p99 ms | B per subscription | writes per delivery (per node) | CPU s: nodes, load tool | disconnects |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | --- | --- |")
	for _, r := range rs {
		per, writes := "–", "–"
		if r.BytesPerSubscription != 0 {
			per = fmt.Sprintf("%.0f", r.BytesPerSubscription)
		}
		if len(r.WritesPerDelivery) > 0 {
			writes = fmt.Sprint(r.WritesPerDelivery)
		}
		fmt.Fprintf(w, "| %s | %d × %d (of %d) | %g | %.0f | %.0f | %d (%.3f%%) | %d | %.2f | %.2f | %.2f | %.2f / %.2f | %s | %s | %v, %.1f | subs %d %s, pubs %d %s |\n",
			r.Server, r.Connected, r.PerConn, r.Rooms, r.RoomRate, r.ExpectedPerS, r.DeliveriesPerS, r.Loss, r.LossPct, r.Duplicates,
			r.LatencyP50Ms, r.LatencyP99Ms, r.LatencyMaxMs, r.SubscribeP50Ms, r.SubscribeP99Ms, per, writes, r.NodeCPUS, r.ToolCPUS,
			r.SubDisconnects, codes(r.SubCloseCodes), r.PubDisconnects, codes(r.PubCloseCodes))
	}
	fmt.Fprintln(w)
}
