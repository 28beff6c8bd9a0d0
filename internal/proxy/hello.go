package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"
)

// maxHello bounds what a tunnel reads from its client before deciding: 16 KiB
// of handshake (a ClientHello with post-quantum key shares is about 2 KiB)
// plus the headers of a few TLS records it may be split into. A client whose
// ClientHello does not fit is refused.
const maxHello = 16<<10 + 5*8

// extECH is the encrypted_client_hello extension (RFC 9849): it hides the
// name the client really asks for behind a public one, so the name cannot be
// checked.
const extECH = 0xfe0d

// hello is what a tunnel's client sent first.
type hello struct {
	// pre holds every byte read from the client, to send on if the tunnel is
	// allowed: the ClientHello and anything that came with it (0-RTT data).
	pre []byte
	// tls: the first bytes are a TLS handshake record and parsed as a
	// ClientHello; then sni is its server_name (empty if absent) and ech
	// whether it carries an encrypted ClientHello.
	tls  bool
	sni  string
	ech  bool
	err  error // why no ClientHello could be read, when !tls
	read error // the client connection's own read error, if any
}

var errHelloSeen = errors.New("client hello recorded")

// readHello reads the client's first bytes. TLS parsing is crypto/tls's own
// (a server handshake stopped in GetConfigForClient, as smokescreen does), so
// a ClientHello split across TCP segments or TLS records, or malformed in
// ways an attacker chooses, meets the parser Go's servers use. Nothing is
// written to the client: the recording conn refuses writes.
func readHello(r io.Reader) hello {
	rc := &recordingConn{r: r, max: maxHello}
	var first [1]byte
	if _, err := io.ReadFull(rc, first[:]); err != nil {
		return hello{pre: rc.buf, err: err, read: rc.err}
	}
	if first[0] != 0x16 { // not a TLS handshake record
		return hello{pre: rc.buf, err: errNotTLS, read: rc.err}
	}
	rc.replay = 1
	var h hello
	srv := tls.Server(rc, &tls.Config{
		GetConfigForClient: func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
			h.tls, h.sni = true, chi.ServerName
			for _, x := range chi.Extensions {
				h.ech = h.ech || x == extECH
			}
			return nil, errHelloSeen
		},
	})
	err := srv.Handshake()
	h.pre, h.read = rc.buf, rc.err
	if !h.tls {
		h.err = err
		if errors.Is(rc.err, errHelloTooLarge) {
			h.err = errHelloTooLarge
		}
	}
	return h
}

var (
	errNotTLS        = errors.New("the first bytes are not a TLS handshake")
	errHelloTooLarge = errors.New("the ClientHello is larger than 16 KiB")
)

// recordingConn feeds the client's bytes to crypto/tls and keeps them, up to
// max. Writes fail, so no alert or ServerHello ever reaches the client.
type recordingConn struct {
	r      io.Reader
	buf    []byte
	max    int
	replay int // bytes of buf to hand out again before reading more
	err    error
}

func (c *recordingConn) Read(p []byte) (int, error) {
	if c.replay > 0 {
		n := copy(p, c.buf[len(c.buf)-c.replay:])
		c.replay -= n
		return n, nil
	}
	if c.err != nil {
		return 0, c.err
	}
	room := c.max - len(c.buf)
	if room <= 0 {
		c.err = errHelloTooLarge
		return 0, c.err
	}
	if len(p) > room {
		p = p[:room]
	}
	n, err := c.r.Read(p)
	c.buf = append(c.buf, p[:n]...)
	if err != nil {
		c.err = err
	}
	return n, err
}

var errNoWrites = errors.New("the tunnel writes nothing to its client before the check")

func (c *recordingConn) Write([]byte) (int, error)        { return 0, errNoWrites }
func (c *recordingConn) Close() error                     { return nil }
func (c *recordingConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *recordingConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *recordingConn) SetDeadline(time.Time) error      { return nil }
func (c *recordingConn) SetReadDeadline(time.Time) error  { return nil }
func (c *recordingConn) SetWriteDeadline(time.Time) error { return nil }
