// Package chatjson makes JSON chat messages of a given size for the
// compression tests and the load tool: a batch of messages with ids, users,
// times and text of words from a small vocabulary, so that they compress as
// chat does rather than as padding does.
package chatjson

import (
	"strconv"
	"strings"
)

var (
	words = strings.Fields("the meeting is moved to tomorrow at ten can you review my pull request before lunch " +
		"thanks sure I will look after standup deploy went fine we saw a spike in latency on node two ok nice " +
		"ship it where are docs for this endpoint coffee anyone weekend plans hiking rain")
	users = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"}
)

const (
	head = `{"type":"batch","room":"team-backend","messages":[`
	tail = `],"draft":""}`
)

// Message is a chat message of exactly n bytes (at least MinSize); seed
// picks which one, the same for the same seed.
func Message(n, seed int) string {
	n = max(n, MinSize)
	var b strings.Builder
	b.WriteString(head)
	x := uint32(2463534242 + uint32(seed)*7919)
	next := func(m int) int { // xorshift32
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		return int(x % uint32(m))
	}
	text := func() string {
		var w []string
		for range 3 + next(15) {
			w = append(w, words[next(len(words))])
		}
		return strings.Join(w, " ")
	}
	for i := 0; ; i++ {
		u := users[next(len(users))]
		m := `{"id":"000` + strconv.Itoa(next(1<<30)) + `","user":{"name":"` + u + `","avatar":"https://cdn.example.com/a/` +
			u + `.png"},"sent_at":` + strconv.Itoa(1764700000+next(1<<20)) + `,"text":"` + text() + `"}`
		if i > 0 {
			m = "," + m
		}
		if b.Len()+len(m)+len(tail) > n {
			break
		}
		b.WriteString(m)
	}
	// What the user is typing fills the message up to n bytes.
	room := n - b.Len() - len(tail)
	var draft strings.Builder
	for draft.Len() < room {
		draft.WriteString(text() + " ")
	}
	b.WriteString(`],"draft":"` + draft.String()[:room] + `"}`)
	return b.String()
}

// MinSize is the shortest message: the batch around an empty draft.
const MinSize = len(head + tail)
