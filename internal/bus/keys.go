package bus

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
)

// The names of every Redis key, and of every Pub/Sub channel of our own,
// that belong to a channel. They all start with the channel's prefix
// (channelPrefix), which puts them in the channel's own Cluster slot, so
// that one script can update them and SPUBLISH on the channel, and which
// names the channel unambiguously: no channel's keys can be another's.
// Channel names that start with "redis_ws:" are refused (channels.go), so
// none of these can be a client's channel either.
//
//	redis_ws:{chat}:m                  meta hash of chat's history (e: epoch, o: last offset)
//	redis_ws:{chat}:s                  its stream
//	redis_ws:{chat}:i:<sha256 hex>     what a POST with an Idempotency-Key was recorded as
//	redis_ws:{chat}:pn, …:pu           presence: the nodes, the users
//	redis_ws:{chat}:presence           Pub/Sub channel of the join and leave events
//	redis_ws:{user}:12:{user}:inbox:m  a channel with braces: a tag, its length, its name

// HistoryKeys are the Redis keys of a channel's history: its meta hash
// (epoch and last offset) and its stream.
func HistoryKeys(ch string) []string {
	prefix := channelPrefix(ch)
	return []string{prefix + "m", prefix + "s"}
}

// IdempotencyKey holds what a POST to ch with the Idempotency-Key key was
// recorded as. The key is scoped to the route (its channel templates) and
// to the user who sent it, so that nobody else's POST with the same key is
// taken for a retry of theirs; the name is a digest of the three, so that
// no key a client chooses can name another's.
func IdempotencyKey(ch, route, user, key string) string {
	h := sha256.New()
	for _, s := range []string{route, user, key} {
		_ = binary.Write(h, binary.BigEndian, uint32(len(s)))
		h.Write([]byte(s))
	}
	return channelPrefix(ch) + "i:" + hex.EncodeToString(h.Sum(nil))
}

// PresenceKeys are the Redis keys of a channel's presence: the nodes that
// have connections in it, and the users each has.
func PresenceKeys(ch string) []string {
	prefix := channelPrefix(ch)
	return []string{prefix + "pn", prefix + "pu"}
}

// PresenceEvents is the Pub/Sub channel of ch's join and leave events, in
// ch's slot, so that sharded Pub/Sub sends it through ch's shard.
func PresenceEvents(ch string) string { return channelPrefix(ch) + "presence" }

// channelPrefix starts every key of ch. A channel without braces is its own
// hash tag (redis_ws:{chat}:), and cannot hold the "}" that ends it. A
// channel with braces is written whole after a tag of its slot — its own
// {tag} when it has one, else a short string of the same slot — and after
// its length, so that where its name ends never depends on what it holds
// (redis_ws:{u}:8:room:{u}:i:… and redis_ws:{u}:10:room:{u}:i:m cannot meet).
func channelPrefix(ch string) string {
	if !strings.ContainsAny(ch, "{}") {
		return "redis_ws:{" + ch + "}:"
	}
	tag, ok := hashTag(ch)
	if !ok {
		tag = slotTag(KeySlot(ch))
	}
	return "redis_ws:{" + tag + "}:" + strconv.Itoa(len(ch)) + ":" + ch + ":"
}

// hashTag is the part of a key that Redis Cluster hashes, when the key has
// a non-empty {tag}.
func hashTag(key string) (string, bool) {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return "", false
	}
	n := strings.IndexByte(key[open+1:], '}')
	if n <= 0 {
		return "", false
	}
	return key[open+1 : open+1+n], true
}

// slotTags[slot] is a short string without braces whose slot is slot.
var slotTags = sync.OnceValue(func() []string {
	tags := make([]string, 16384)
	for left, i := len(tags), 0; left > 0; i++ {
		s := strconv.FormatInt(int64(i), 36)
		if slot := KeySlot(s); tags[slot] == "" {
			tags[slot] = s
			left--
		}
	}
	return tags
})

func slotTag(slot int) string { return slotTags()[slot] }
