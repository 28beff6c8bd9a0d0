package instance

import (
	"bytes"
	"io"
	"sync"
)

// lines shares one output between writers (the gateway's buffered log,
// the agent's log, EMF) so that their lines never interleave: each writer
// holds back a partial last line until its newline comes (the gateway's
// buffer flushes in 64 KiB chunks, which may end mid-line).
type lines struct {
	mu  sync.Mutex
	out io.Writer
}

// maxPartial bounds a held-back partial line; past it the bytes go out.
const maxPartial = 1 << 20

func (l *lines) writer() io.Writer { return &lineWriter{l: l} }

type lineWriter struct {
	mu      sync.Mutex
	l       *lines
	partial []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	i := bytes.LastIndexByte(w.partial, '\n')
	if i < 0 && len(w.partial) < maxPartial {
		return len(p), nil
	}
	n := i + 1
	if i < 0 {
		n = len(w.partial)
	}
	w.l.mu.Lock()
	_, err := w.l.out.Write(w.partial[:n])
	w.l.mu.Unlock()
	w.partial = append(w.partial[:0], w.partial[n:]...)
	if err != nil {
		return 0, err
	}
	return len(p), nil
}
