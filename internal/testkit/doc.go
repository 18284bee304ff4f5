// Package testkit is what the root package's in-process tests and the
// process tests of e2e/ share: polling with a deadline, a client's frame
// as bytes, counters, a bare redis-server, a channel table of one
// connection, an inflater, signed tokens. Only tests import it.
package testkit
