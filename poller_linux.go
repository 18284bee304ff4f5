package redisws

import (
	"encoding/binary"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// poller waits in epoll for polled WebSockets to become readable, so that
// no goroutine is parked per idle connection: one goroutine waits for all
// of them, and each readable connection gets a goroutine of its own until
// it has read what came (polledConn.ready). One per process; it runs while
// connections are registered (started with the first, ended after the
// last, woken by an eventfd), so that nothing lingers once they are gone.
type poller struct {
	mu    sync.Mutex
	epfd  int
	wake  int                    // eventfd, event id 0: the map may be empty
	conns map[uint64]*polledConn // by id; nil while not running
	last  uint64                 // the last id given
}

var clientPoller poller

// pollEvents: readable, or closed by the peer; one event per arming, so
// that at most one goroutine reads a connection.
const pollEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// add registers pc, which is then read whenever it is readable.
func (p *poller) add(pc *polledConn) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		if err := p.start(); err != nil {
			return err
		}
	}
	// An id in the event, never the fd: a closed fd's number is reused.
	p.last++
	pc.id, pc.epfd = p.last, p.epfd
	p.conns[pc.id] = pc
	if err := pc.ctl(unix.EPOLL_CTL_ADD); err != nil {
		p.drop(pc)
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	return nil
}

// remove ends pc's registration; the last one stops the poller.
func (p *poller) remove(pc *polledConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = pc.ctl(unix.EPOLL_CTL_DEL)
	p.drop(pc)
}

// drop forgets pc and wakes the poller once none is left. p.mu held.
func (p *poller) drop(pc *polledConn) {
	delete(p.conns, pc.id)
	if len(p.conns) == 0 {
		_, _ = unix.Write(p.wake, binary.NativeEndian.AppendUint64(nil, 1))
	}
}

// start makes the epoll instance and its goroutine. p.mu held.
func (p *poller) start() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll_create1: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err == nil {
		err = unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN})
		if err != nil {
			_ = unix.Close(wake)
		}
	}
	if err != nil {
		_ = unix.Close(epfd)
		return fmt.Errorf("eventfd: %w", err)
	}
	p.epfd, p.wake, p.conns = epfd, wake, map[uint64]*polledConn{}
	go p.run(epfd, wake)
	return nil
}

// run hands every readable connection to a goroutine of its own, until no
// connection is left.
func (p *poller) run(epfd, wake int) {
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(epfd, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil { // EBADF, EFAULT, EINVAL: only a bug here gives them
			panic(fmt.Sprintf("redis_ws: epoll_wait: %v", err))
		}
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if id == 0 {
				if p.stopIfEmpty(epfd, wake) {
					return
				}
				continue
			}
			p.mu.Lock()
			pc := p.conns[id]
			p.mu.Unlock()
			if pc != nil { // else removed since: its event is stale
				go pc.ready()
			}
		}
	}
}

// stopIfEmpty ends the poller once no connection is registered.
func (p *poller) stopIfEmpty(epfd, wake int) bool {
	var count [8]byte
	_, _ = unix.Read(wake, count[:])
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.conns) > 0 {
		return false
	}
	p.conns = nil
	_ = unix.Close(epfd)
	_ = unix.Close(wake)
	return true
}

// ctl registers, re-arms or removes pc in its epoll instance, which lives
// while pc is registered.
func (pc *polledConn) ctl(op int) error {
	ev := unix.EpollEvent{Events: pollEvents, Fd: int32(uint32(pc.id)), Pad: int32(uint32(pc.id >> 32))}
	var err error
	if cerr := pc.raw.Control(func(fd uintptr) { err = unix.EpollCtl(pc.epfd, op, int(fd), &ev) }); cerr != nil {
		return cerr
	}
	return err
}
