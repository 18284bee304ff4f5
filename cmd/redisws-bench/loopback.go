package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"syscall"
	"time"
)

// checkLoopbackURL accepts only URLs of the given schemes whose host
// resolves to loopback addresses only (127.0.0.0/8 or ::1).
func checkLoopbackURL(raw string, schemes ...string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	ok := false
	for _, s := range schemes {
		ok = ok || u.Scheme == s
	}
	if !ok {
		return fmt.Errorf("scheme must be one of %v", schemes)
	}
	host := u.Hostname()
	if host == "" {
		return errors.New("no host")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("resolve %s: %v", host, err)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("%s resolves to nothing", host)
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return fmt.Errorf("%s resolves to %s, which is not loopback (127.0.0.0/8, ::1); this tool only targets this machine", host, a.IP)
		}
	}
	return nil
}

// loopbackDialer refuses, at connect time, any address that is not loopback,
// whatever a resolver said before.
var loopbackDialer = &net.Dialer{
	Timeout: 10 * time.Second,
	Control: func(network, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("refusing to connect to non-loopback address %s", address)
		}
		return nil
	},
}
