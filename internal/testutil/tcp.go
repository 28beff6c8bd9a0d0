package testutil

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// TCPServer is a raw TCP server on loopback that runs serve on every
// connection it accepts, for tests that answer as a misbehaving peer would.
// At cleanup it closes the listener and every connection still open, then
// waits for the serve calls to return.
type TCPServer struct {
	Addr    string
	Accepts atomic.Int32 // connections accepted so far
}

// NewTCPServer starts a TCPServer; serve need not close the connection.
func NewTCPServer(t testing.TB, serve func(net.Conn)) *TCPServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &TCPServer{Addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.Accepts.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return s
}
