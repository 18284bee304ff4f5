package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
)

// sourceDialer dials loopback targets from the -sources addresses in turn.
// The kernel gives each local address its own range of ephemeral ports, so
// tens of thousands of connections to one node do not run out of them.
// Without sources (or nil) it is loopbackDialer.
type sourceDialer struct {
	dialers []*net.Dialer
	next    atomic.Uint64
}

func newSourceDialer(addrs []netip.Addr) *sourceDialer {
	s := &sourceDialer{}
	for _, a := range addrs {
		d := *loopbackDialer
		d.LocalAddr = &net.TCPAddr{IP: a.AsSlice()}
		s.dialers = append(s.dialers, &d)
	}
	return s
}

func (s *sourceDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if s == nil || len(s.dialers) == 0 {
		return loopbackDialer.DialContext(ctx, network, addr)
	}
	d := s.dialers[(s.next.Add(1)-1)%uint64(len(s.dialers))]
	return d.DialContext(ctx, network, addr)
}

// parseSources reads -sources: comma-separated loopback addresses
// (127.0.0.2,127.0.0.3; every 127.0.0.0/8 address is this machine's on Linux).
func parseSources(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, item := range splitList(s) {
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("-sources: %q is not an IP address", item)
		}
		if !a.IsLoopback() {
			return nil, fmt.Errorf("-sources: %s is not a loopback address", a)
		}
		out = append(out, a)
	}
	return out, nil
}
