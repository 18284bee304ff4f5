// Package fanout is one handler instance's side of delivery: its hub (the
// local clients by channel, a bus.Receiver that joins the broker's channel
// table) and each client's queue and writer. A client writes to a link the
// adapter gives it (a WebSocket or an event stream). It imports bus and
// frame, never Caddy.
package fanout
