// Package frame is a message of a channel on its way to the clients, and
// the bytes it is written as: its place in the history (Position), the
// marks it carries through Redis, one WebSocket frame per kind of client
// (raw, the redis_ws.v1 envelope, a Server-Sent Event), encoded once and
// shared, and its permessage-deflate form. It knows neither Redis nor
// Caddy.
package frame
