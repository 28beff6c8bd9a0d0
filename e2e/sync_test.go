package e2e

import (
	"net"
	"strings"
	"sync"
)

// logSink collects a child process's output for the test to read.
type logSink struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
