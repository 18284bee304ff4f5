package main

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// startWatchdog ends the process (exit status 3) when a run takes longer
// than limit, so that a stuck server cannot stall the bench scripts.
func startWatchdog(limit time.Duration) *time.Timer {
	return time.AfterFunc(limit, func() {
		fmt.Fprintf(os.Stderr, "redisws-bench: watchdog: run exceeded %v, exiting\n", limit)
		os.Exit(3)
	})
}

// awaitReaders waits for the reader goroutines once their connections are
// closed, at most 10 s: a reader stuck past that is reported, not waited for.
func awaitReaders(readers *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { readers.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("some readers did not stop within 10s after close")
	}
}
