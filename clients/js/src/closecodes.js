// What the client does after the server closed the connection, by close code
// (protocol/close.go lists the server's codes and when it sends them).

// Codes that say the client itself is at fault: reconnecting would only be
// closed again the same way, so the client stops (state "closed").
const stop = new Set([
  1002, // protocol error
  1003, // unsupported data
  1007, // invalid payload (text that is not UTF-8)
  1008, // policy: too slow, or over the route's rate_limit
  1009, // message too big
]);

// CLOSE_TOKEN_EXPIRED: the connection's token expired before it was
// refreshed. The client reconnects only when it can get a fresh token
// (getToken). protocol/close.go has no such code yet (the server does not
// close a connection whose token expires): this is the one the issue
// names for it, to be kept in step with the server.
export const CLOSE_TOKEN_EXPIRED = 4003;

// CLOSE_GAP (4001): messages were missed and cannot be given; the
// application reloads its state, the client reconnects.
export const CLOSE_GAP = 4001;

/** "stop", "token" (reconnect with a fresh token) or "reconnect". */
export function afterClose(code) {
  if (stop.has(code)) return "stop";
  if (code === CLOSE_TOKEN_EXPIRED) return "token";
  return "reconnect";
}
