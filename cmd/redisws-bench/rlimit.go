package main

import (
	"fmt"
	"os"
	"syscall"
)

// raiseNofile lifts the soft limit on open files to the hard one: every
// connection of a run is a file descriptor.
func raiseNofile(quiet bool) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil && !quiet {
			fmt.Fprintln(os.Stderr, "redisws-bench: raising RLIMIT_NOFILE:", err)
		}
	}
}

// nofile is the soft limit on open files, reported in the JSON line; 0 when unknown.
func nofile() uint64 {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) != nil {
		return 0
	}
	return rl.Cur
}
