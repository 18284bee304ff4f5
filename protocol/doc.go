// Package protocol is the wire protocol of redis_ws, the Caddy module that
// serves one real-time space from several nodes through Redis: what a client
// reads and writes, for client authors and for the server itself. It uses the
// standard library only.
//
// A route of the module serves its channels three ways, on one URL:
//
//   - A WebSocket. A raw client (no subprotocol, or one of the route's) sends
//     and receives payloads as they are, text or binary. An envelope client
//     offers Subprotocol and gets each message as a JSON Frame with its
//     channel and, when the route has history, its Position: first a
//     subscribed frame per channel, then messages, and presence events on a
//     route with presence. The server ends a connection with one of the
//     Close codes.
//   - A command client offers CommandSubprotocol and gets the same frames,
//     and sends Commands to subscribe to and leave channels at run time,
//     publish to a named channel, ask presence and refresh its token; each
//     command is answered by a frame carrying its id, or an error frame
//     with one of the Err codes.
//   - An event stream (a GET with Accept: text/event-stream): one event per
//     message (EventMessage, EventBinary), an id that ParseEventID reads,
//     and EventReset when a resume could not be served.
//   - A POST, which publishes its body.
//
// On a route with history, a client resumes after a reconnect: since=
// <epoch>:<offset> on the URL (one per channel on a route of several:
// <channel>@<epoch>:<offset>, see ChannelPosition and ParseSince), or the
// event stream's Last-Event-ID, gets every message it missed, in order and
// once, then live ones; rewind=<n> replays the last n. When the history
// cannot give them all, the subscribed frame says "recovered":false and an
// event stream starts with a reset event: reload state.
package protocol
