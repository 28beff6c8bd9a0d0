package limits

import (
	"net"
	"sync"
	"sync/atomic"
)

// Conns bounds the client connections open at once across listeners. When
// it is full, Accept waits instead of failing: new connections queue in the
// kernel's listen backlog and are taken as soon as one closes, so a burst
// larger than the limit is served late rather than refused, and the process
// never runs out of file descriptors (which would fail accept(2) for
// everyone, and every upstream dial with it).
type Conns struct {
	mu    sync.Mutex
	max   int
	slots int           // held by open connections and by Accepts in progress
	wake  chan struct{} // closed and replaced whenever a slot may have freed
	open  atomic.Int64  // connections accepted and not yet closed
	waits atomic.Int64
}

// NewConns returns a limit of max open connections.
func NewConns(max int) *Conns {
	return &Conns{max: max, wake: make(chan struct{})}
}

// SetMax changes the limit; connections over a lowered limit stay open and
// new ones wait until the count is under it.
func (c *Conns) SetMax(max int) {
	c.mu.Lock()
	c.max = max
	c.broadcastLocked()
	c.mu.Unlock()
}

// Open reports the connections open now.
func (c *Conns) Open() int { return int(c.open.Load()) }

// Max reports the limit.
func (c *Conns) Max() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.max
}

// Waits reports how many times an Accept waited because the limit was reached.
func (c *Conns) Waits() int64 { return c.waits.Load() }

func (c *Conns) broadcastLocked() {
	close(c.wake)
	c.wake = make(chan struct{})
}

// acquire takes a slot before Accept (so a full limit leaves connections
// in the backlog rather than accepting and closing them), waiting until one
// is free or done is closed.
func (c *Conns) acquire(done <-chan struct{}) bool {
	waited := false
	for {
		c.mu.Lock()
		if c.slots < c.max {
			c.slots++
			c.mu.Unlock()
			return true
		}
		wake := c.wake
		c.mu.Unlock()
		if !waited {
			waited = true
			c.waits.Add(1)
		}
		select {
		case <-wake:
		case <-done:
			return false
		}
	}
}

func (c *Conns) release() {
	c.mu.Lock()
	c.slots--
	c.broadcastLocked()
	c.mu.Unlock()
}

// Listener wraps l so that its connections count against c.
func (c *Conns) Listener(l net.Listener) net.Listener {
	return &limitedListener{Listener: l, c: c, done: make(chan struct{})}
}

type limitedListener struct {
	net.Listener
	c         *Conns
	done      chan struct{}
	closeOnce sync.Once
}

func (l *limitedListener) Accept() (net.Conn, error) {
	if !l.c.acquire(l.done) {
		return nil, net.ErrClosed
	}
	conn, err := l.Listener.Accept()
	if err != nil {
		l.c.release()
		return nil, err
	}
	l.c.open.Add(1)
	return &limitedConn{Conn: conn, release: func() { l.c.open.Add(-1); l.c.release() }}, nil
}

func (l *limitedListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// DefaultConns is the connection limit that fits a process allowed nofile
// open files: each client connection may hold one upstream connection, and
// reserve more are kept for idle upstream connections, listeners and logs.
// Under a small open-file limit the reserve shrinks to a quarter of it, so
// the gateway still takes hundreds of connections rather than one.
func DefaultConns(nofile uint64, reserve int) int {
	reserve = int(min(int64(reserve), int64(nofile/4)))
	n := (int64(nofile) - int64(reserve)) / 2
	if n < 1 {
		return 1
	}
	return int(min(n, 1<<20))
}
