package main

import (
	"fmt"
	"os"
	"time"
)

// resumeResult is the JSON line of a resume run.
type resumeResult struct {
	Mode      string   `json:"mode"`
	Time      string   `json:"time"`
	URLs      []string `json:"urls"`
	Clients   int      `json:"clients"`
	Behind    int      `json:"behind"`
	SizeBytes int      `json:"size_bytes"`
	RunID     string   `json:"run_id"`

	FirstConnected int     `json:"first_connected"`
	Epoch          string  `json:"epoch"`
	Since          int64   `json:"since_offset"`
	PublishS       float64 `json:"publish_s"` // publishing the messages until the publisher saw all recorded

	connectStats                    // of the storm
	StormConnected   int            `json:"storm_connected"`
	CaughtUp         int            `json:"caught_up"`
	AllCaughtUpMs    float64        `json:"all_caught_up_ms"` // storm start → last client has every replayed message; -1: not all did
	CaughtUpP50Ms    float64        `json:"caught_up_p50_ms"`
	CaughtUpP99Ms    float64        `json:"caught_up_p99_ms"`
	ReplayP50Ms      float64        `json:"replay_p50_ms"` // a client's handshake done → it has every replayed message
	ReplayP99Ms      float64        `json:"replay_p99_ms"`
	Live             int            `json:"live"`
	AllLiveMs        float64        `json:"all_live_ms"`         // storm start → last client has the live message; -1: not all did
	LiveAfterSendMs  float64        `json:"live_after_send_ms"`  // live message sent → last client has it
	LiveLatencyP50Ms float64        `json:"live_latency_p50_ms"` // sent → received, over clients
	ReplayedFrames   uint64         `json:"replayed_frames"`     // offsets received in order, replay and live, over all clients
	Errors           int            `json:"errors"`              // sum of error_counts and clients that did not finish
	ErrorCounts      map[string]int `json:"error_counts,omitempty"`
	StormS           float64        `json:"storm_s"`     // storm start → every client live, or the waits' end
	StormCPUS        []float64      `json:"storm_cpu_s"` // CPU seconds of each -pids process over storm_s (/proc/PID/stat)
	WallS            float64        `json:"wall_s"`
	Error            string         `json:"error,omitempty"`
}

// tally adds up the storm's clients into res: handshakes, replays, live
// messages and every error. liveNs is when the live message was sent, from
// the storm's start.
func (res *resumeResult) tally(clients []*resumeClient, stormStart time.Time, liveNs int64) {
	var dials dialResult
	dials.errs = map[string]int{}
	var ups, lives, replays []time.Duration
	for _, rc := range clients {
		if rc.dialErr != nil {
			dials.failed++
			k := rc.dialErr.Error()
			if len(k) > 120 {
				k = k[:120]
			}
			if _, ok := dials.errs[k]; ok || len(dials.errs) < maxErrKeys {
				dials.errs[k]++
			} else {
				dials.errs["other"]++
			}
			continue
		}
		res.StormConnected++
		dials.times = append(dials.times, rc.connected)
		res.ReplayedFrames += uint64(max(rc.check.upTo()-rc.check.since, 0))
		for k, v := range rc.check.errs {
			res.ErrorCounts[k] += v
		}
		if rc.caughtUp > 0 {
			ups = append(ups, rc.caughtUp)
			replays = append(replays, rc.caughtUp-rc.upAt)
		} else {
			res.ErrorCounts["not_caught_up"]++
		}
		if rc.live > 0 {
			lives = append(lives, time.Duration(rc.live.Nanoseconds()-liveNs))
		} else {
			res.ErrorCounts["no_live"]++
		}
		if rc.readErr != nil {
			res.ErrorCounts["closed_"+closeKey(rc.readErr)]++
		}
	}
	res.countConnects(stormStart, &dials)
	res.CaughtUp, res.Live = len(ups), len(lives)
	p50, p99, _ := durQuantiles(ups)
	res.CaughtUpP50Ms, res.CaughtUpP99Ms = durMs(p50), durMs(p99)
	rp50, rp99, _ := durQuantiles(replays)
	res.ReplayP50Ms, res.ReplayP99Ms = durMs(rp50), durMs(rp99)
	lp50, _, _ := durQuantiles(lives)
	res.LiveLatencyP50Ms = durMs(lp50)
	res.ErrorCounts["connect"] = dials.failed
	for k, v := range res.ErrorCounts {
		if v == 0 {
			delete(res.ErrorCounts, k)
		}
		res.Errors += v
	}
}

func (res *resumeResult) print() {
	fmt.Fprintf(os.Stderr, "\n== resume: %d clients, %d behind, %d B ==\n"+
		"storm       %d connected (handshake p50 %.1f ms, p99 %.1f ms, max %.1f ms)\n"+
		"caught up   %d, all after %.1f ms (p50 %.1f, p99 %.1f; after the client's handshake p50 %.1f, p99 %.1f)\n"+
		"live        %d, all after %.1f ms from the storm's start, %.1f ms after its send (p50 %.1f)\n"+
		"errors      %d %s\n",
		res.Clients, res.Behind, res.SizeBytes, res.StormConnected, res.ConnectP50Ms, res.ConnectP99Ms, res.ConnectMaxMs,
		res.CaughtUp, res.AllCaughtUpMs, res.CaughtUpP50Ms, res.CaughtUpP99Ms, res.ReplayP50Ms, res.ReplayP99Ms,
		res.Live, res.AllLiveMs, res.LiveAfterSendMs, res.LiveLatencyP50Ms, res.Errors, codes(res.ErrorCounts))
}
