package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// postTimeout bounds one POST, answer included: the route answers 503
// after 5 s without Redis.
const postTimeout = 15 * time.Second

// maxPostClients bounds -pubs in post mode (each client is a TCP connection).
const maxPostClients = 10000

// postClient is one keep-alive HTTP client on its own connection: its own
// Transport, one connection at most, loopback only, no proxy, no redirects.
func postClient(dials *atomic.Int64) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return loopbackDialer.DialContext(ctx, network, addr)
		},
		MaxIdleConns:          1,
		MaxIdleConnsPerHost:   1,
		MaxConnsPerHost:       1,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: postTimeout,
		DisableCompression:    true,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       postTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// postMode has -pubs clients, each on its own keep-alive connection, POST
// -size byte bodies (stamped payloads when -size allows) to the URLs
// (client i to URL i mod n), one request after the other, as fast as the
// answers come or paced to -rate in all, for -duration (and at most -posts
// requests in all when given). Every answer is tallied; bench/post.sh
// compares the 200s with what Redis recorded.
func postMode(c *config) int {
	wallStart := time.Now()
	defer startWatchdog(c.duration + postTimeout + 30*time.Second).Stop()
	run := rand.Uint32()
	res := &postResult{
		Mode: "post", Label: c.label, Time: time.Now().UTC().Format(time.RFC3339), URLs: c.urls,
		Clients: c.pubs, SizeBytes: c.size, DurationS: c.duration.Seconds(), MaxPosts: c.maxPosts,
		RunID: fmt.Sprintf("%08x", run),
	}
	urls := make([]string, len(c.urls))
	for i, u := range c.urls {
		var err error
		if urls[i], err = httpURL(u); err != nil {
			fmt.Fprintf(os.Stderr, "redisws-bench: %v\n", err)
			return 2
		}
	}
	var every time.Duration // -rate: one client's interval
	if c.paced {
		res.RateAsked = c.rate
		every = time.Duration(float64(c.pubs) / c.rate * float64(time.Second))
	}
	c.logf("post: %d client(s), %d B bodies, %v, rate %s, to %v ...", c.pubs, c.size, c.duration, rateText(c), urls)

	var dials atomic.Int64
	var tickets atomic.Int64 // requests started, for -posts
	stats := make([]*postStats, c.pubs)
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(c.duration)
	for i := range stats {
		stats[i] = &postStats{}
		wg.Add(1)
		go func(i int, st *postStats) {
			defer wg.Done()
			client := postClient(&dials)
			defer client.CloseIdleConnections()
			u := urls[i%len(urls)]
			tmpl := postBody(c.size, run, i)
			answer := make([]byte, 4096)
			for j := 0; ; j++ {
				if every > 0 {
					// client i's j-th request is due at (j + i/clients) intervals
					due := start.Add(time.Duration((float64(j) + float64(i)/float64(c.pubs)) * float64(every)))
					if wait := time.Until(due); wait > 0 {
						time.Sleep(wait)
					}
				}
				if !time.Now().Before(end) || (c.maxPosts > 0 && tickets.Add(1) > int64(c.maxPosts)) {
					return
				}
				body := slices.Clone(tmpl)
				if len(body) >= headerSize {
					stamp(body, uint64(j+1), nowNs())
				}
				status, lat, n, err := postOnce(client, u, body, answer)
				st.add(status, lat, answer[:n], err)
				if err != nil {
					// the server is gone or closed on us: do not spin
					time.Sleep(10 * time.Millisecond)
				}
			}
		}(i, stats[i])
	}
	wg.Wait()
	window := time.Since(start)
	res.WindowS = round3(window.Seconds())
	res.merge(stats)
	res.Connections = dials.Load()
	if window > 0 {
		res.OKPerS = round3(float64(res.OK) / window.Seconds())
	}
	if res.OK == 0 {
		res.Error = "no POST was answered 200"
	}
	res.WallS = round3(time.Since(wallStart).Seconds())
	emitJSON(res)
	if !c.jsonOnly {
		printPost(res)
	}
	if res.Error != "" {
		return 1
	}
	return 0
}

func rateText(c *config) string {
	if c.paced {
		return fmt.Sprintf("%.0f/s in all", c.rate)
	}
	return "as fast as answered"
}

// postBody is a client's body template: a stamped payload (sender = the
// client) when size holds the header, else size bytes of 'p'.
func postBody(size int, run uint32, client int) []byte {
	if size >= headerSize {
		return newPayload(size, run, client)
	}
	return bytes.Repeat([]byte("p"), size)
}

// postOnce sends one POST and reads its answer into buf (the rest is
// discarded, so that the connection is reused).
func postOnce(client *http.Client, u string, body, buf []byte) (status int, lat time.Duration, n int, err error) {
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, 0, 0, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, time.Since(t0), 0, err
	}
	n, rerr := io.ReadFull(resp.Body, buf)
	if rerr == nil {
		_, rerr = io.Copy(io.Discard, resp.Body)
	} else if rerr == io.ErrUnexpectedEOF || rerr == io.EOF {
		rerr = nil
	}
	resp.Body.Close()
	lat = time.Since(t0)
	if rerr != nil {
		return 0, lat, 0, fmt.Errorf("reading the answer (HTTP %d): %w", resp.StatusCode, rerr)
	}
	return resp.StatusCode, lat, n, nil
}
