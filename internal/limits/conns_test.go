package limits

import (
	"errors"
	"net"
	"testing"
	"time"
)

// acceptAsync runs one Accept on l and delivers its result.
func acceptAsync(l net.Listener) <-chan net.Conn {
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(ch)
			return
		}
		ch <- c
	}()
	return ch
}

func dial(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func expectAccepted(t *testing.T, ch <-chan net.Conn, what string) net.Conn {
	t.Helper()
	select {
	case c, ok := <-ch:
		if !ok {
			t.Fatalf("%s: Accept failed", what)
		}
		return c
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: Accept still waiting", what)
	}
	return nil
}

// expectWaiting returns once an Accept has started waiting for a slot
// (Conns counts each wait: the observable fact, not a pause), failing if a
// connection came through meanwhile.
func expectWaiting(t *testing.T, c *Conns, waitsBefore int64, ch <-chan net.Conn, what string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); c.Waits() == waitsBefore; {
		select {
		case <-ch:
			t.Fatalf("%s: Accept returned while the limit was full", what)
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: Accept neither waited nor returned", what)
		}
	}
	select {
	case <-ch:
		t.Fatalf("%s: Accept returned while the limit was full", what)
	default:
	}
}

// A full limit makes Accept wait (the client's connect still succeeds in
// the backlog) and a close lets the waiting connection in, across two
// listeners sharing one limit.
func TestConnsSharedAcrossListenersAndWaits(t *testing.T) {
	c := NewConns(2)
	a := c.Listener(mustListen(t))
	b := c.Listener(mustListen(t))
	defer a.Close()
	defer b.Close()

	dial(t, a)
	first := expectAccepted(t, acceptAsync(a), "first")
	dial(t, b)
	expectAccepted(t, acceptAsync(b), "second")
	if c.Open() != 2 {
		t.Fatalf("open = %d, want 2", c.Open())
	}

	dial(t, a) // queued in the backlog
	third := acceptAsync(a)
	expectWaiting(t, c, 0, third, "third")
	if c.Waits() != 1 {
		t.Errorf("waits = %d, want 1", c.Waits())
	}
	first.Close()
	first.Close() // a second Close must not free a second slot
	expectAccepted(t, third, "third after a close")
	if c.Open() != 2 {
		t.Fatalf("open = %d after close and accept, want 2", c.Open())
	}
}

func TestConnsRaisedLimitWakesWaiters(t *testing.T) {
	c := NewConns(1)
	l := c.Listener(mustListen(t))
	defer l.Close()
	dial(t, l)
	expectAccepted(t, acceptAsync(l), "first")
	dial(t, l)
	second := acceptAsync(l)
	expectWaiting(t, c, 0, second, "second")
	c.SetMax(2)
	expectAccepted(t, second, "second after SetMax(2)")
}

// Closing a listener must end an Accept that waits for a slot, or
// shutdown would hang on a full gateway.
func TestConnsCloseEndsWaitingAccept(t *testing.T) {
	c := NewConns(1)
	l := c.Listener(mustListen(t))
	dial(t, l)
	expectAccepted(t, acceptAsync(l), "first")
	errc := make(chan error, 1)
	go func() { _, err := l.Accept(); errc <- err }()
	for deadline := time.Now().Add(5 * time.Second); c.Waits() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second Accept never waited for a slot")
		}
	}
	l.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still waiting after the listener was closed")
	}
}

func TestDefaultConns(t *testing.T) {
	for _, tc := range []struct {
		nofile  uint64
		reserve int
		want    int
	}{
		{20000, 1088, 9456},
		{1024, 1088, 384},
		{16, 1088, 6},
		{1, 1088, 1},
		{1 << 40, 1088, 1 << 20},
	} {
		if got := DefaultConns(tc.nofile, tc.reserve); got != tc.want {
			t.Errorf("DefaultConns(%d, %d) = %d, want %d", tc.nofile, tc.reserve, got, tc.want)
		}
	}
}

func mustListen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// IPv6 sources count per /64: one host usually holds a whole /64, so a
// bound per address would bound nothing.
func TestSourceKey(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 1}, "203.0.113.7"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:203.0.113.7"), Port: 1}, "203.0.113.7"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:3:4:5:6"), Port: 1}, "2001:db8:1:2::"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:ffff::1"), Port: 1}, "2001:db8:1:2::"},
	} {
		got, ok := sourceKey(tc.addr)
		if !ok || got.String() != tc.want {
			t.Errorf("sourceKey(%v) = %v, %v; want %s", tc.addr, got, ok, tc.want)
		}
	}
	if _, ok := sourceKey(&net.UnixAddr{Name: "x"}); ok {
		t.Error("a non-IP address is counted")
	}
}

// A deadline the connection's owner sets (a tunnel's idle deadline) still
// ends a write with an ordinary timeout, which the owner handles; only the
// write idle deadline turns into ErrWriteStalled, and closes the slot.
func TestWriteDeadlines(t *testing.T) {
	c := NewConns(4)
	l := c.Listener(mustListen(t))
	defer l.Close()
	peer := dial(t, l)
	peer.(*net.TCPConn).SetReadBuffer(4096)
	conn := expectAccepted(t, acceptAsync(l), "conn")
	big := make([]byte, 64<<20) // more than any socket buffers hold

	c.SetRules(ConnRules{WriteIdle: time.Hour})
	conn.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := conn.Write(big)
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("write past the owner's deadline: %v, want a timeout", err)
	}
	if c.Open() != 1 {
		t.Fatalf("the owner's timeout closed the connection")
	}

	c.SetRules(ConnRules{WriteIdle: 50 * time.Millisecond})
	conn.SetWriteDeadline(time.Time{})
	if _, err := conn.Write(big); !errors.Is(err, ErrWriteStalled) {
		t.Fatalf("write to a peer that reads nothing: %v, want ErrWriteStalled", err)
	}
	if c.Open() != 0 || c.Refused()[RefusedWriteStall] != 1 {
		t.Errorf("after the stall: open %d, refused %v", c.Open(), c.Refused())
	}
}
