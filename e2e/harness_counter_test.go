package e2e

import (
	"sync/atomic"

	"github.com/gorilla/websocket"
)

// counter is a light client for many connections: it only counts what it
// reads and remembers the last message.
type counter struct {
	conn *websocket.Conn
	got  atomic.Int64
	last atomic.Value // string
	done chan struct{}
}

func dialCounter(url string) (*counter, error) {
	conn, _, err := wsDialer.Dial(url, nil)
	if err != nil {
		return nil, err
	}
	c := &counter{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				return
			}
			c.last.Store(string(data))
			c.got.Add(1)
		}
	}()
	return c, nil
}
