package upstream

import (
	"io"
	"net/http"
)

// Recorder is a ResponseWriter that keeps one small answer in memory: the
// gateway's own calls (the egress check) and its error bodies turned into
// Lambda events. It keeps at most Max bytes of body (4 KiB when 0); a
// Write past that fails, so a partner cannot make it grow.
type Recorder struct {
	Max    int
	Status int
	header http.Header
	body   []byte
	cut    bool
}

func (r *Recorder) Header() http.Header {
	if r.header == nil {
		r.header = http.Header{}
	}
	return r.header
}

func (r *Recorder) WriteHeader(s int) {
	if r.Status == 0 {
		r.Status = s
	}
}

func (r *Recorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	max := r.Max
	if max == 0 {
		max = 4 << 10
	}
	if len(r.body)+len(p) > max {
		r.cut = true
		return 0, io.ErrShortBuffer
	}
	r.body = append(r.body, p...)
	return len(p), nil
}

// Cut reports that a write was refused: Body is then only the start of
// the answer (upstream.Do takes a refused write for a client gone and
// returns no error), so a caller that reads the answer must check this.
func (r *Recorder) Cut() bool { return r.cut }

// Body is what was written.
func (r *Recorder) Body() string { return string(r.body) }
