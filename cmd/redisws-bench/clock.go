package main

import "time"

// Times in payloads are unix nanoseconds derived from the monotonic clock
// (base + elapsed), so wall-clock steps during a run do not skew latency.
var (
	clockBase     = time.Now()
	clockBaseUnix = clockBase.UnixNano()
)

func nowNs() int64 { return clockBaseUnix + int64(time.Since(clockBase)) }
