//go:build !linux

package redisws

import "time"

// polledConn: connections are read by the poller on Linux only; elsewhere
// every WebSocket has its goroutine reader (pollReads declines), and a
// wsLink's polled stays nil.
type polledConn struct{}

func pollReads(*wsReader, time.Duration, func()) bool { return false }

func (*polledConn) silent() bool { return false }

func (*polledConn) end() {}
