package redisws

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/bus"
	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

const (
	// postWait is how long a POST waits for Redis to take its message
	// before it is answered 503 and the message is given up.
	postWait = 5 * time.Second
	// maxIdempotencyKey is the longest Idempotency-Key accepted, in bytes.
	maxIdempotencyKey = 256
	// postBodyWait is how long a POST's body may take to arrive, whole. A
	// message is at most max_message_size; a client that sends it slower,
	// or never finishes, would otherwise hold its request (and its buffer)
	// until Caddy's idle timeout, a minute of silence, which a trickle
	// never reaches.
	postBodyWait = 10 * time.Second
)

// postAnswer is the body of a POST's 200.
type postAnswer struct {
	Channel   string `json:"channel"`
	Offset    int64  `json:"offset,omitempty"`
	Epoch     string `json:"epoch,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"` // its Idempotency-Key was used before
}

// servePost publishes the request body, byte for byte, as one message to
// the route's publish channel, and answers once Redis has taken it. The
// message is binary with Content-Type application/octet-stream; otherwise
// it is text when it is valid UTF-8, as a message of redis-cli publish.
func (h *Handler) servePost(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer) error {
	status, err := h.post(w, r, repl)
	h.metrics.httpPublishes.WithLabelValues(strconv.Itoa(status)).Inc()
	return err
}

// post is servePost; it returns the status it answered with.
func (h *Handler) post(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer) (int, error) {
	if h.publish == "" {
		w.Header().Set("Allow", h.allowedMethods())
		return h.refusePost(w, http.StatusMethodNotAllowed, "this route does not publish (publish off)")
	}
	_, ch, err := h.resolve(repl)
	if err != nil {
		return h.refusePost(w, http.StatusBadRequest, err.Error())
	}
	key := r.Header.Get("Idempotency-Key")
	if err := h.checkIdempotencyKey(key); err != nil {
		return h.refusePost(w, http.StatusBadRequest, err.Error())
	}
	if r.ContentLength > h.MaxMessageSize {
		return h.refusePost(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the message is larger than max_message_size (%d bytes)", h.MaxMessageSize))
	}
	body, err := readBody(w, r, h.MaxMessageSize)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return h.refusePost(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the message is larger than max_message_size (%d bytes)", h.MaxMessageSize))
	case errors.Is(err, os.ErrDeadlineExceeded):
		return h.refusePost(w, http.StatusRequestTimeout, fmt.Sprintf("the message did not arrive within %s; it was not published", postBodyWait))
	case err != nil:
		return http.StatusBadRequest, fmt.Errorf("reading the message: %w", err) // the client is gone
	}

	if key != "" {
		key = bus.IdempotencyKey(ch, h.routeScope, authUser(repl), key)
	}
	ack := bus.NewPublishAck(key)
	if !h.broker.PublishWaiting(ch, body, postedBinary(r), h.history, ack) {
		w.Header().Set("Retry-After", retryAfter)
		return h.refusePost(w, http.StatusServiceUnavailable, "too many messages wait for redis; try again later")
	}
	switch err := ack.Wait(r.Context(), postWait); {
	case errors.Is(err, bus.ErrGaveUp):
		w.Header().Set("Retry-After", retryAfter)
		return h.refusePost(w, http.StatusServiceUnavailable, "redis is unreachable; the message was not published")
	case err != nil:
		return 499, nil // the client left; the message is not published
	}
	switch {
	case errors.Is(ack.Err, bus.ErrExpired):
		w.Header().Set("Retry-After", retryAfter)
		return h.refusePost(w, http.StatusServiceUnavailable, "redis is unreachable; the message was not published")
	case errors.Is(ack.Err, bus.ErrNewChannels):
		w.Header().Set("Retry-After", strconv.Itoa(h.history.NewChannelWait()))
		return h.refusePost(w, http.StatusTooManyRequests, "too many new channels get a history on this route (new_channels); try again later")
	case errors.Is(ack.Err, bus.ErrKeyReused):
		return h.refusePost(w, http.StatusUnprocessableEntity, "this Idempotency-Key was used in the last 5 minutes for another message; a retry must send the same body, a new message needs a new key")
	case errors.Is(ack.Err, bus.ErrRefused):
		h.logger.Debug("POST refused by redis", zap.String("channel", ch), zap.Error(ack.Err))
		return h.refusePost(w, http.StatusBadGateway, "redis refused the message")
	case ack.Err != nil:
		h.logger.Debug("POST not confirmed by redis", zap.String("channel", ch), zap.Error(ack.Err))
		w.Header().Set("Retry-After", retryAfter)
		return h.refusePost(w, http.StatusServiceUnavailable, "redis did not confirm the message; it may have been published (an Idempotency-Key makes a retry safe)")
	}
	answer := postAnswer{Channel: ch, Offset: ack.Pos.Offset, Epoch: ack.Pos.Epoch, Duplicate: ack.Duplicate}
	b, _ := json.Marshal(answer)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(append(b, '\n'))
	return http.StatusOK, err
}

// readBody reads a POST's body, of at most limit bytes, within
// postBodyWait. A deadline that passed stays, so that the server does not
// wait for the rest of the body either before it answers.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	rc := http.NewResponseController(w)
	// A connection that cannot take a deadline is left to Caddy's idle
	// timeout.
	deadline := rc.SetReadDeadline(time.Now().Add(postBodyWait)) == nil
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err == nil && deadline {
		_ = rc.SetReadDeadline(time.Time{})
	}
	return body, err
}

// authUser is the user Caddy's authentication put on the request, "" for
// none: Idempotency-Keys are scoped to it.
func authUser(repl *caddy.Replacer) string {
	if repl == nil {
		return ""
	}
	return repl.ReplaceAll("{http.auth.user.id}", "")
}

// checkIdempotencyKey accepts no key, or one of visible ASCII on a route
// with history, which records what the key got.
func (h *Handler) checkIdempotencyKey(key string) error {
	if key == "" {
		return nil
	}
	if h.History == nil {
		return errors.New("Idempotency-Key needs the route's history, which is off")
	}
	if len(key) > maxIdempotencyKey {
		return fmt.Errorf("Idempotency-Key is longer than %d bytes", maxIdempotencyKey)
	}
	for i := 0; i < len(key); i++ {
		if key[i] <= ' ' || key[i] > '~' {
			return errors.New("Idempotency-Key must be visible ASCII characters")
		}
	}
	return nil
}

func (h *Handler) refusePost(w http.ResponseWriter, status int, reason string) (int, error) {
	return status, refuse(w, status, reason)
}

// postedBinary tells whether a POST's body is a binary message: its
// Content-Type says application/octet-stream.
func postedBinary(r *http.Request) bool {
	t, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && t == "application/octet-stream"
}
