package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// tableMode reads JSON result lines from the named files (or stdin) and
// prints Markdown tables: one for fanout runs, one for labelled fanout runs
// (-label: with rooms and slow clients, the subscribers' bytes on the wire
// and the nodes' CPU; SSE runs are listed there too), one
// for post runs, one for manyrooms runs, one for conns runs.
func tableMode(files []string) int {
	var readers []io.Reader
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "redisws-bench:", err)
			return 1
		}
		defer fh.Close()
		readers = append(readers, fh)
	}
	if len(readers) == 0 {
		readers = append(readers, os.Stdin)
	}
	var fan, labelled []fanoutResult
	var con []connsResult
	var posts []postResult
	var many []manyroomsResult
	sc := bufio.NewScanner(io.MultiReader(readers...))
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var m struct {
			Mode string `json:"mode"`
		}
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		switch m.Mode {
		case "fanout":
			var r fanoutResult
			switch {
			case json.Unmarshal([]byte(line), &r) != nil:
			case r.Label != "" || r.Transport == "sse":
				if r.Label == "" {
					r.Label = "SSE subscribers"
				}
				labelled = append(labelled, r)
			default:
				fan = append(fan, r)
			}
		case "post":
			var r postResult
			if json.Unmarshal([]byte(line), &r) == nil {
				posts = append(posts, r)
			}
		case "manyrooms":
			var r manyroomsResult
			if json.Unmarshal([]byte(line), &r) == nil {
				many = append(many, r)
			}
		case "conns":
			var r connsResult
			if json.Unmarshal([]byte(line), &r) == nil {
				con = append(con, r)
			}
		}
	}
	w := os.Stdout
	if len(fan) > 0 {
		fmt.Fprintln(w, "| subs | pubs | size | rate asked | sent/s achieved | deliveries/s | loss | dup | reord | p50 ms | p99 ms | max ms | disconnects | node RSS after |")
		fmt.Fprintln(w, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		for _, r := range fan {
			fmt.Fprintf(w, "| %d | %d | %d B | %.0f | %.1f | %.0f | %d (%.3f%%) | %d | %d | %.2f | %.2f | %.2f | %d | %s |\n",
				r.SubsConnected, r.PubsConnected, r.SizeBytes, r.RateAsked, r.SentPerS, r.DeliveriesPerS,
				r.Loss, r.LossPct, r.Duplicates, r.Reordered, r.LatencyP50Ms, r.LatencyP99Ms, r.LatencyMaxMs,
				r.SubDisconnects+r.PubDisconnects, kbMB(r.RSSAfterKB))
		}
		fmt.Fprintln(w)
	}
	if len(labelled) > 0 {
		fmt.Fprintln(w, "| setup | rooms | subs | pubs | size | rate asked | sent/s | deliveries/s | loss | dup | reord | p50 ms | p99 ms | max ms | sub disconnects | slow closed | wire B per delivery | node CPU s | node fan-out mean ms |")
		fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		for _, r := range labelled {
			slow := "–"
			if r.Slow > 0 {
				slow = fmt.Sprintf("%d of %d %s", r.SlowClosed, r.SlowConnected, codes(r.SlowEnds))
			}
			wire, cpu, fan := "–", "–", "–"
			if r.NodeFanoutMeanMs > 0 {
				fan = fmt.Sprintf("%.2f", r.NodeFanoutMeanMs)
			}
			if r.SubWireBytes > 0 && r.Received > 0 {
				wire = fmt.Sprintf("%.0f", float64(r.SubWireBytes)/float64(r.Received))
			}
			if len(r.NodeCPUS) > 0 {
				var sum float64
				for _, s := range r.NodeCPUS {
					sum += s
				}
				cpu = fmt.Sprintf("%.2f", sum)
			}
			fmt.Fprintf(w, "| %s | %d | %d | %d | %d B | %.0f | %.1f | %.0f | %d (%.3f%%) | %d | %d | %.2f | %.2f | %.2f | %d | %s | %s | %s | %s |\n",
				r.Label, r.Rooms, r.SubsConnected, r.PubsConnected, r.SizeBytes, r.RateAsked, r.SentPerS, r.DeliveriesPerS,
				r.Loss, r.LossPct, r.Duplicates, r.Reordered, r.LatencyP50Ms, r.LatencyP99Ms, r.LatencyMaxMs,
				r.SubDisconnects, slow, wire, cpu, fan)
		}
		fmt.Fprintln(w)
	}
	if len(posts) > 0 {
		fmt.Fprintln(w, "| setup | clients | size | rate asked | requests | 200 | 200/s | other answers | errors | p50 ms | p99 ms | max ms | offsets |")
		fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |")
		for _, r := range posts {
			rate, setup, offs := "max", r.Label, "–"
			if r.RateAsked > 0 {
				rate = fmt.Sprintf("%.0f", r.RateAsked)
			}
			if setup == "" {
				setup = "post"
			}
			if r.WithOffset > 0 {
				offs = fmt.Sprintf("%d..%d, %d dup, %d gaps", r.OffsetMin, r.OffsetMax, r.OffsetDuplicates, r.OffsetGaps)
			}
			fmt.Fprintf(w, "| %s | %d | %d B | %s | %d | %d | %.0f | %s | %d | %.2f | %.2f | %.2f | %s |\n",
				setup, r.Clients, r.SizeBytes, rate, r.Requests, r.OK, r.OKPerS, codesU(r.Statuses), r.Errors,
				r.LatencyP50Ms, r.LatencyP99Ms, r.LatencyMaxMs, offs)
		}
		fmt.Fprintln(w)
	}
	if len(many) > 0 {
		manyroomsTable(w, many)
	}
	if len(con) > 0 {
		fmt.Fprintln(w, "| idle conns | opened | handshake p99 ms | node RSS before | node RSS after | KB per conn | goroutines before → after (per conn) |")
		fmt.Fprintln(w, "| ---: | ---: | ---: | ---: | ---: | ---: | --- |")
		for _, r := range con {
			g := "n/a"
			if r.GoroutinesBef >= 0 && r.GoroutinesAft >= 0 {
				g = fmt.Sprintf("%d → %d (%.2f)", r.GoroutinesBef, r.GoroutinesAft, r.GoroutinesPer)
			}
			fmt.Fprintf(w, "| %d | %d | %.1f | %s | %s | %.1f | %s |\n",
				r.Conns, r.Opened, r.ConnectP99Ms, kbMB(r.RSSBeforeKB), kbMB(r.RSSAfterKB), r.KBPerConn, g)
		}
		fmt.Fprintln(w)
	}
	return 0
}

func kbMB(kb int64) string {
	if kb < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MB", float64(kb)/1024)
}
