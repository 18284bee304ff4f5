package protocol

// The close codes the server sends when it ends a WebSocket (RFC 6455
// §7.4.1; 4000-4999 are for applications). The close frame's reason is
// for people and may change; a client decides by the code. When a client
// closes, the server answers with the client's own code. An event stream has
// no close code: it ends, and EventSource reconnects with Last-Event-ID.
const (
	// CloseGoingAway (1001): the server is exiting (caddy stop, a
	// signal). Reconnect; a balancer sends the client to another node.
	CloseGoingAway = 1001
	// CloseProtocolError (1002): the client broke RFC 6455: a control
	// frame over 125 bytes, an unmasked frame, reserved bits or opcodes, a
	// close frame with a 1-byte body, an invalid code or a reason that is
	// not UTF-8.
	CloseProtocolError = 1002
	// CloseInvalidPayload (1007): a text message that is not UTF-8, closed
	// at the fragment that no continuation can make valid.
	CloseInvalidPayload = 1007
	// ClosePolicyViolation (1008): the client reads too slowly (its
	// messages waiting passed the route's send_queue; reason "too slow"; a
	// client that cannot even take the close frame within 1 s gets its
	// connection cut instead), or sends faster than the route's rate_limit
	// (reason "rate limit exceeded").
	ClosePolicyViolation = 1008
	// CloseMessageTooBig (1009): a message larger than the route's
	// max_message_size, once inflated when it came compressed.
	CloseMessageTooBig = 1009
	// CloseServiceRestart (1012): a config reload changed or removed the
	// route; the server spreads these closes over its reload_close_delay.
	// Reconnect into the new config (resume to lose nothing).
	CloseServiceRestart = 1012
	// CloseTryAgainLater (1013): the client published to a channel without
	// history when the route lets no more channels get one now (its
	// history's new_channels); the message was not published.
	CloseTryAgainLater = 1013
	// CloseGap (4001): messages of a channel were missed and cannot be given
	// (the route's gap_policy is close): reload state, then reconnect.
	CloseGap = 4001
	// CloseTokenExpired (4003): the token that authenticated the connection
	// expired (its exp, {http.auth.user.exp}). Get a fresh token, then
	// reconnect (resume to lose nothing).
	CloseTokenExpired = 4003
)
