package h1

import (
	"crypto/tls"
	"errors"
	"net"
)

// recordConn is the TCP connection under a tls.Conn. It follows the TLS
// record framing of every byte crypto/tls reads, and during a probe it
// answers reads with a temporary error instead of touching the socket.
//
// Why: crypto/tls reads ahead. When the last bytes of a response arrive,
// what the partner sent after them may already sit inside the tls.Conn,
// decrypted (returned by the next Read), as whole records (decrypted by the
// next Read), or as part of a record (invisible to everything: neither a
// bufio.Reader above nor a socket peek below sees it). The probe is a Read
// through the tls.Conn that may not reach the socket: crypto/tls first
// returns any decrypted bytes and decrypts any whole record it holds (a
// session ticket is consumed there and is harmless; data or an alert is
// dirt), and only when it holds no whole record asks recordConn for more.
// At that moment what it holds is exactly the bytes after the last whole
// record it was given, which is nothing if and only if the bytes read from
// the socket so far end on a record boundary.
type recordConn struct {
	net.Conn
	probing bool
	hdr     [5]byte // the current record's header, hn bytes of it seen
	hn      int
	left    int // bytes of the current record's body still to come
	one     [1]byte
}

// errProbe is temporary, so crypto/tls keeps the connection usable
// (it records only permanent read errors).
var errProbe error = probeError{}

type probeError struct{}

func (probeError) Error() string   { return "h1: probe, not a read" }
func (probeError) Timeout() bool   { return true }
func (probeError) Temporary() bool { return true }

var _ net.Error = probeError{}

func (r *recordConn) Read(p []byte) (int, error) {
	if r.probing {
		return 0, errProbe
	}
	n, err := r.Conn.Read(p)
	r.track(p[:n])
	return n, err
}

// track advances the framing state over b: 5-byte headers (type, version,
// length) each followed by length bytes of body.
func (r *recordConn) track(b []byte) {
	for len(b) > 0 {
		if r.left > 0 {
			k := min(r.left, len(b))
			r.left -= k
			b = b[k:]
			continue
		}
		k := copy(r.hdr[r.hn:], b)
		r.hn += k
		b = b[k:]
		if r.hn == len(r.hdr) {
			r.left = int(r.hdr[3])<<8 | int(r.hdr[4])
			r.hn = 0
		}
	}
}

// probe reports whether tc holds nothing the partner sent: no plaintext, no
// record other than post-handshake messages (consumed by the probe), no
// part of a record. It must run with no other read in progress on tc.
func (r *recordConn) probe(tc *tls.Conn) bool {
	r.probing = true
	n, err := tc.Read(r.one[:])
	r.probing = false
	return n == 0 && errors.Is(err, errProbe) && r.hn == 0 && r.left == 0
}
