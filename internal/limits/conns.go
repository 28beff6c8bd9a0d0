package limits

import (
	"context"
	"errors"
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Conns bounds the client connections open at once across listeners. When
// it is full, Accept waits instead of failing: new connections queue in the
// kernel's listen backlog and are taken as soon as one closes, so a burst
// larger than the limit is served late rather than refused, and the process
// never runs out of file descriptors (which would fail accept(2) for
// everyone, and every upstream dial with it).
//
// Waiting is only fair if no one can sit on the slots, so Conns also
// enforces what a connection owes in return for one (ConnRules): a bound
// per source address, an authenticated request within a short time, and a
// client that keeps reading what it is sent.
type Conns struct {
	mu    sync.Mutex
	max   int
	slots int           // held by open connections and by Accepts in progress
	wake  chan struct{} // closed and replaced whenever a slot may have freed
	bySrc map[netip.Addr]int
	rules ConnRules
	open  atomic.Int64 // connections accepted and not yet closed
	waits atomic.Int64

	refusedPerIP atomic.Int64
	authTimeouts atomic.Int64
	writeStalls  atomic.Int64
}

// ConnRules are the obligations of a client connection. Zero values turn a
// rule off (only the admin listener's limit does that: it has no clients).
type ConnRules struct {
	// PerSource bounds the connections open at once from one source
	// address (one IPv6 /64). Connections over it are closed at once
	// rather than left waiting in the backlog, where they would delay
	// everyone else's.
	PerSource int
	// AuthTimeout closes a connection that has not carried an
	// authenticated request this long after it was accepted.
	AuthTimeout time.Duration
	// WriteIdle cuts off a connection whose peer has accepted no byte of
	// a write for this long. It is a progress deadline, renewed by every
	// byte the peer takes, so a slow download that keeps reading lives on.
	WriteIdle time.Duration
}

// NewConns returns a limit of max open connections.
func NewConns(max int) *Conns {
	return &Conns{max: max, wake: make(chan struct{}), bySrc: map[netip.Addr]int{}}
}

// SetMax changes the limit; connections over a lowered limit stay open and
// new ones wait until the count is under it.
func (c *Conns) SetMax(max int) {
	c.mu.Lock()
	c.max = max
	c.broadcastLocked()
	c.mu.Unlock()
}

// SetRules changes the rules for connections accepted from now on; the
// write deadline applies to open connections too from their next write.
func (c *Conns) SetRules(r ConnRules) {
	c.mu.Lock()
	c.rules = r
	c.mu.Unlock()
}

func (c *Conns) getRules() ConnRules {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rules
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

// Refusal reasons, the label values of the refusal counter.
const (
	RefusedPerSource   = "per_source_limit"
	RefusedAuthTimeout = "auth_timeout"
	RefusedWriteStall  = "write_idle_timeout"
)

// Refused reports the connections closed by each rule, by reason.
func (c *Conns) Refused() map[string]int64 {
	return map[string]int64{
		RefusedPerSource:   c.refusedPerIP.Load(),
		RefusedAuthTimeout: c.authTimeouts.Load(),
		RefusedWriteStall:  c.writeStalls.Load(),
	}
}

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

// sourceKey is what the per-source bound counts by: the IPv4 address, or
// the /64 of an IPv6 one (one host usually holds a whole /64, so counting
// single IPv6 addresses would bound nothing). ok is false for addresses
// that are not IP (a test's pipe), which are not counted.
func sourceKey(a net.Addr) (netip.Addr, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return netip.Addr{}, false
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		ip = p.Addr()
	}
	return ip, true
}

// admitSource counts a connection from src, or reports false if src has
// its share open already.
func (c *Conns) admitSource(src netip.Addr) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.rules.PerSource; n > 0 && c.bySrc[src] >= n {
		return false
	}
	c.bySrc[src]++
	return true
}

func (c *Conns) leaveSource(src netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bySrc[src] <= 1 {
		delete(c.bySrc, src)
		return
	}
	c.bySrc[src]--
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
	for {
		if !l.c.acquire(l.done) {
			return nil, net.ErrClosed
		}
		conn, err := l.Listener.Accept()
		if err != nil {
			l.c.release()
			return nil, err
		}
		src, counted := sourceKey(conn.RemoteAddr())
		if counted && !l.c.admitSource(src) {
			// Closed now, with a reset rather than a FIN so the refused
			// flood leaves no TIME_WAIT here, and the slot goes back.
			if tc, ok := conn.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
			conn.Close()
			l.c.release()
			l.c.refusedPerIP.Add(1)
			continue
		}
		l.c.open.Add(1)
		lc := &limitedConn{Conn: conn, c: l.c, src: src, counted: counted}
		if d := l.c.getRules().AuthTimeout; d > 0 {
			// Armed only once stored, so authExpired (which reads it
			// through Close) cannot run before the field is set.
			lc.authTimer = time.AfterFunc(math.MaxInt64, lc.authExpired)
			lc.authTimer.Reset(d)
		} else {
			lc.auth.Store(authDone)
		}
		return lc, nil
	}
}

func (l *limitedListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// Authentication states of a connection.
const (
	authPending int32 = iota
	authDone
	authExpired
)

// ErrWriteStalled is what a write returns when the peer took no byte of it
// for the write idle time. It is deliberately not a timeout (net.Error's
// Timeout is false): code that rides over its own deadlines on timeouts
// (a tunnel's idle deadline) must not retry it.
var ErrWriteStalled = errors.New("the client read nothing for the write idle time")

type limitedConn struct {
	net.Conn
	c       *Conns
	src     netip.Addr
	counted bool
	once    sync.Once

	auth      atomic.Int32
	authTimer *time.Timer
	stalled   atomic.Bool

	// mu guards the write deadline the connection's owner asked for
	// (ownerWD) and the one armed on the socket (armedWD): a write waits
	// for the earlier of the owner's and the idle deadline.
	mu      sync.Mutex
	ownerWD time.Time
	armedWD time.Time
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		if c.authTimer != nil {
			c.authTimer.Stop()
		}
		if c.counted {
			c.c.leaveSource(c.src)
		}
		c.c.open.Add(-1)
		c.c.release()
	})
	return err
}

// CloseWrite lets net/http end a connection it closes after a response
// (Connection: close, as after a 401) gracefully: FIN first, then a short
// wait, so the client reads the answer before any reset.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *limitedConn) authExpired() {
	if c.auth.CompareAndSwap(authPending, authExpired) {
		c.c.authTimeouts.Add(1)
		c.Close()
	}
}

// authenticated keeps the connection past the auth timeout. It reports
// false if the timeout has already closed it.
func (c *limitedConn) authenticated() bool {
	if c.auth.CompareAndSwap(authPending, authDone) {
		c.authTimer.Stop()
		return true
	}
	return c.auth.Load() == authDone
}

func (c *limitedConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetWriteDeadline records the owner's deadline for the next write. It
// reaches a write already waiting only if it is earlier than what that
// write waits for, so a deadline pushed forward (a busy tunnel's) cannot
// stretch the wait of a write to a client that reads nothing.
func (c *limitedConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ownerWD = t
	if !t.IsZero() && (c.armedWD.IsZero() || t.Before(c.armedWD)) {
		c.armedWD = t
		return c.Conn.SetWriteDeadline(t)
	}
	return nil
}

// arm sets the deadline for the next write attempt and reports whether it
// is the owner's (whose expiry is the owner's business) rather than the
// idle one.
func (c *limitedConn) arm(idle time.Duration) (owner bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.ownerWD
	owner = !d.IsZero()
	if idle > 0 {
		if i := time.Now().Add(idle); d.IsZero() || i.Before(d) {
			d, owner = i, false
		}
	}
	c.armedWD = d
	return owner, c.Conn.SetWriteDeadline(d)
}

// Write waits at most the write idle time for each bit of progress: a
// timeout after some bytes went out just re-arms, one with no byte taken
// cuts the connection off.
func (c *limitedConn) Write(p []byte) (int, error) {
	idle := c.c.getRules().WriteIdle
	total := 0
	for {
		owner, err := c.arm(idle)
		if err != nil {
			return total, err
		}
		n, err := c.Conn.Write(p)
		total += n
		p = p[n:]
		if err == nil || owner || !isTimeout(err) {
			return total, err
		}
		if n > 0 {
			continue
		}
		if c.stalled.CompareAndSwap(false, true) {
			c.c.writeStalls.Add(1)
		}
		// Closed here, not left to the owner: its slot comes back now.
		c.Close()
		return total, ErrWriteStalled
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

type connKey struct{}

// WithConn returns ctx carrying c's connection state when c came from a
// Conns listener (directly or under TLS), for Authenticated and
// WriteStalled. It is http.Server's ConnContext.
func WithConn(ctx context.Context, c net.Conn) context.Context {
	for i := 0; i < 4; i++ { // a TLS conn over a limited one, at most
		if lc, ok := c.(*limitedConn); ok {
			return context.WithValue(ctx, connKey{}, lc)
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return ctx
		}
		c = u.NetConn()
	}
	return ctx
}

func fromContext(ctx context.Context) *limitedConn {
	lc, _ := ctx.Value(connKey{}).(*limitedConn)
	return lc
}

// Authenticated tells the connection of a request (see WithConn) that it
// carried an authenticated request, so the auth timeout no longer closes
// it. It reports false if the timeout closed it already.
func Authenticated(ctx context.Context) bool {
	if lc := fromContext(ctx); lc != nil {
		return lc.authenticated()
	}
	return true
}

// WriteStalled reports whether the connection of a request was cut off
// because its client stopped reading: whatever was being sent is truncated.
func WriteStalled(ctx context.Context) bool {
	lc := fromContext(ctx)
	return lc != nil && lc.stalled.Load()
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
