package redisws

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/fanout"
	"github.com/gorilla/websocket"
	"golang.org/x/sys/unix"
)

// polledConn is a WebSocket whose reads the poller drives: while its client
// is silent no goroutine waits for it, only its registration in epoll.
// Plain TCP only: a TLS connection hides its records, which only its own
// blocking reads decrypt, and keeps the goroutine reader.
type polledConn struct {
	rd   *wsReader
	raw  syscall.RawConn
	id   uint64 // in the poller's events
	epfd int
	// mu orders each reader goroutine after the one before it: one runs
	// at a time (EPOLLONESHOT), but through the kernel, which the race
	// detector does not see.
	mu     sync.Mutex
	in     clientInput
	closed func() // the connection's end (Handler.opened)
	// heard is when the client last sent a message or a control frame
	// (unix nanos); silent past pongWait, it is ended at a ping.
	heard    atomic.Int64
	pongWait time.Duration
	// ended: the server ended it (End); the reader stops reading.
	ended atomic.Bool
	// holders: the reader and End; the last to let go closes the socket,
	// so that neither closes it under the other.
	holders atomic.Int32
}

// pollReads has the poller read rd's connection from now on, and run
// closed when it ends; false: the connection is not one it can read (not
// plain TCP, or epoll refused it), and rd needs a goroutine.
func pollReads(rd *wsReader, pongWait time.Duration, closed func()) bool {
	tcp, ok := rd.l.out.Conn.(*net.TCPConn)
	if !ok {
		return false
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		return false
	}
	pc := &polledConn{rd: rd, raw: raw, closed: closed, pongWait: pongWait}
	pc.in.limit, pc.in.deflate = rd.wireLimit, rd.l.out.deflate
	pc.heard.Store(time.Now().UnixNano())
	pc.holders.Store(2)
	rd.l.out.in, rd.l.polled = &pc.in, pc
	if err := clientPoller.add(pc); err != nil {
		rd.l.out.in, rd.l.polled = nil, nil
		return false
	}
	return true
}

// ready reads what came, after the poller found the socket readable, and
// then waits again; or ends the connection.
func (pc *polledConn) ready() {
	pc.mu.Lock()
	more := pc.readAll()
	pc.mu.Unlock()
	if more && pc.ctl(unix.EPOLL_CTL_MOD) == nil {
		return // level-triggered: fires again at once if more came meanwhile
	}
	clientPoller.remove(pc)
	pc.closed()
	pc.release()
}

// readAll reads until the socket has nothing more, and hands every whole
// message on; false: the connection ends.
func (pc *polledConn) readAll() bool {
	for !pc.ended.Load() {
		n, err := pc.readSome()
		if errors.Is(err, unix.EAGAIN) {
			pc.in.compact()
			return true
		}
		if n == 0 || err != nil { // the client is gone
			return false
		}
		if err := pc.in.follow(pc.control); err != nil {
			refused := err.(*readRefusal)
			pc.rd.c.Close(refused.code, refused.reason)
			return false
		}
		for ; pc.in.pending > 0; pc.in.pending-- {
			if !pc.rd.next() {
				return false
			}
			pc.heard.Store(time.Now().UnixNano())
		}
		pc.in.compact()
	}
	return false
}

// readSome is one read that never blocks: EAGAIN when nothing came.
func (pc *polledConn) readSome() (n int, err error) {
	p := pc.in.space()
	cerr := pc.raw.Read(func(fd uintptr) bool {
		for {
			n, err = unix.Read(int(fd), p)
			if err != unix.EINTR {
				return true
			}
		}
	})
	if cerr != nil {
		return 0, cerr
	}
	if err != nil {
		return 0, err
	}
	pc.in.fill(n)
	return n, nil
}

// control takes a ping or pong out of the stream: the client is alive, and
// a ping is answered as gorilla would, through the cork.
func (pc *polledConn) control(opcode int, payload []byte) {
	pc.heard.Store(time.Now().UnixNano())
	if opcode == websocket.PingMessage {
		// A failed write is the writer's to find, at its next one.
		_ = pc.rd.l.conn.WriteControl(websocket.PongMessage, payload, time.Now().Add(fanout.WriteWait))
	}
}

// silent tells whether the client has not been heard for pongWait.
func (pc *polledConn) silent() bool {
	return time.Since(time.Unix(0, pc.heard.Load())) > pc.pongWait
}

// end is the server's end of the connection (wsLink.End, after its close
// frame): closing the socket would drop it from epoll without an event, so
// it is shut down instead, which wakes the reader with an end of file.
func (pc *polledConn) end() {
	pc.ended.Store(true)
	_ = pc.raw.Control(func(fd uintptr) { _ = unix.Shutdown(int(fd), unix.SHUT_RDWR) })
	pc.release()
}

func (pc *polledConn) release() {
	if pc.holders.Add(-1) == 0 {
		_ = pc.rd.l.conn.Close()
	}
}
