package proxy

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"testing/iotest"
	"time"

	"github.com/outgate/outgate/internal/apierr"
	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/core"
	"github.com/outgate/outgate/internal/hostname"
)

// clientHello captures the ClientHello Go's TLS client sends for sni (none
// for an IP address).
func clientHello(t testing.TB, sni string) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	go func() {
		tls.Client(a, &tls.Config{ServerName: sni}).Handshake()
	}()
	var got []byte
	buf := make([]byte, 1<<16)
	b.SetReadDeadline(time.Now().Add(10 * time.Second))
	// One record: header, then its length.
	if _, err := io.ReadFull(b, buf[:5]); err != nil {
		t.Fatal(err)
	}
	n := int(buf[3])<<8 | int(buf[4])
	if _, err := io.ReadFull(b, buf[5:5+n]); err != nil {
		t.Fatal(err)
	}
	got = append(got, buf[:5+n]...)
	b.Close()
	return got
}

// refragment splits a one-record ClientHello into records of at most size
// bytes of handshake each, as RFC 8446 5.1 allows.
func refragment(rec []byte, size int) []byte {
	hdr, payload := rec[:3], rec[5:]
	var out []byte
	for len(payload) > 0 {
		k := min(size, len(payload))
		out = append(out, hdr...)
		out = append(out, byte(k>>8), byte(k))
		out = append(out, payload[:k]...)
		payload = payload[k:]
	}
	return out
}

func TestReadHello(t *testing.T) {
	h := clientHello(t, "api.example.com")
	early := append(append([]byte{}, h...), "0-RTT"...)
	big := refragment(h, 7)
	for _, tt := range []struct {
		name string
		in   io.Reader
		tls  bool
		sni  string
		err  error
	}{
		{"one record", bytes.NewReader(h), true, "api.example.com", nil},
		{"a byte per read", iotest.OneByteReader(bytes.NewReader(h)), true, "api.example.com", nil},
		{"split across TLS records", bytes.NewReader(refragment(h, 100)), true, "api.example.com", nil},
		{"many tiny records, a byte per read", iotest.OneByteReader(bytes.NewReader(big)), len(big) <= maxHello, "api.example.com", nil},
		{"bytes after the hello", bytes.NewReader(early), true, "api.example.com", nil},
		{"no SNI", bytes.NewReader(clientHello(t, "127.0.0.1")), true, "", nil},
		{"SSH", bytes.NewReader([]byte("SSH-2.0-OpenSSH_9.6\r\n")), false, "", errNotTLS},
		{"HTTP", bytes.NewReader([]byte("GET / HTTP/1.1\r\n\r\n")), false, "", errNotTLS},
		{"truncated", bytes.NewReader(h[:len(h)-1]), false, "", nil},
		{"nothing", bytes.NewReader(nil), false, "", io.EOF},
		{"a 64 KiB ClientHello in full records", bytes.NewReader(hugeHello()), false, "", errHelloTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := readHello(tt.in)
			if got.tls != tt.tls || got.sni != tt.sni || (tt.err != nil && !errors.Is(got.err, tt.err)) {
				t.Errorf("tls %v sni %q err %v; want tls %v sni %q err %v", got.tls, got.sni, got.err, tt.tls, tt.sni, tt.err)
			}
			if !tt.tls && got.err == nil {
				t.Error("no ClientHello and no error")
			}
			if len(got.pre) > maxHello {
				t.Errorf("buffered %d bytes, more than %d", len(got.pre), maxHello)
			}
		})
	}
	// Everything read is kept, to go on to the partner when allowed.
	if got := readHello(bytes.NewReader(early)); !bytes.HasPrefix(early, got.pre) || len(got.pre) < len(h) {
		t.Errorf("pre is %d bytes, not a prefix of what the client sent covering its hello (%d)", len(got.pre), len(h))
	}
}

// hugeHello is a ClientHello announcing 65,535 bytes (crypto/tls accepts up
// to 65,536), sent in full 16 KiB records: more than a tunnel buffers.
func hugeHello() []byte {
	var out []byte
	for i := 0; i < 5; i++ {
		rec := make([]byte, 5+16384)
		copy(rec, []byte{0x16, 3, 1, 0x40, 0})
		if i == 0 {
			copy(rec[5:], []byte{1, 0, 0xff, 0xff})
		}
		out = append(out, rec...)
	}
	return out
}

// FuzzReadHello: any bytes, split anyhow, give the same verdict without
// panicking, and never more than maxHello bytes are read.
func FuzzReadHello(f *testing.F) {
	h := clientHello(f, "api.example.com")
	f.Add(h, uint8(0))
	f.Add(refragment(h, 50), uint8(3))
	f.Add(clientHello(f, "127.0.0.1"), uint8(1))
	f.Add([]byte("SSH-2.0-x\r\n"), uint8(0))
	f.Add([]byte{0x16, 3, 1, 0, 4, 1, 0, 0, 0}, uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		whole := readHello(bytes.NewReader(data))
		var in io.Reader = bytes.NewReader(data)
		if split%2 == 1 {
			in = iotest.OneByteReader(in)
		}
		parts := readHello(in)
		if whole.tls != parts.tls || whole.sni != parts.sni || whole.ech != parts.ech {
			t.Errorf("one read: tls %v sni %q; split: tls %v sni %q", whole.tls, whole.sni, parts.tls, parts.sni)
		}
		for _, got := range []hello{whole, parts} {
			if len(got.pre) > maxHello || !bytes.HasPrefix(data, got.pre) {
				t.Errorf("pre: %d bytes, prefix of the input: %v", len(got.pre), bytes.HasPrefix(data, got.pre))
			}
			if !got.tls && got.err == nil {
				t.Error("no ClientHello and no error")
			}
		}
	})
}

// echConfigList builds an ECHConfigList (RFC 9849 section 4) with one
// X25519/HKDF-SHA256/AES-128-GCM config whose public name is publicName, so
// Go's client sends an encrypted ClientHello with that name outside.
func echConfigList(t testing.TB, publicName string) []byte {
	t.Helper()
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u16 := func(b []byte, v int) []byte { return append(b, byte(v>>8), byte(v)) }
	var c []byte
	c = append(c, 7)   // config_id
	c = u16(c, 0x0020) // DHKEM(X25519, HKDF-SHA256)
	pub := key.PublicKey().Bytes()
	c = u16(c, len(pub))
	c = append(c, pub...)
	c = u16(c, 4)      // cipher_suites
	c = u16(c, 0x0001) // HKDF-SHA256
	c = u16(c, 0x0001) // AES-128-GCM
	c = append(c, 0)   // maximum_name_length
	c = append(c, byte(len(publicName)))
	c = append(c, publicName...)
	c = u16(c, 0) // extensions
	cfg := u16(nil, 0xfe0d)
	cfg = u16(cfg, len(c))
	cfg = append(cfg, c...)
	return append(u16(nil, len(cfg)), cfg...)
}

// TestReadHelloECH: an encrypted ClientHello is seen as such, whatever its
// public (outer) name says, and checkHello refuses it even when that name is
// one the client may reach.
func TestReadHelloECH(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	go func() {
		tls.Client(a, &tls.Config{ServerName: "other.example.com", MinVersion: tls.VersionTLS13,
			EncryptedClientHelloConfigList: echConfigList(t, "api.example.com")}).Handshake()
	}()
	b.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := readHello(b)
	b.Close()
	if !got.tls || !got.ech || got.sni != "api.example.com" {
		t.Fatalf("tls %v ech %v sni %q err %v", got.tls, got.ech, got.sni, got.err)
	}
	p, _ := hostname.ParsePattern("api.example.com:443")
	cl := &core.Client{Client: &config.Client{Patterns: []hostname.Pattern{p}}}
	if code, _ := checkHello(cl, "api.example.com", 443, got); code != apierr.CodeSNINotAllowed {
		t.Errorf("an ECH ClientHello with an allowed public name: code %q, want %s", code, apierr.CodeSNINotAllowed)
	}
	got.ech = false
	if code, detail := checkHello(cl, "api.example.com", 443, got); code != "" || detail != "" {
		t.Errorf("the same hello without ECH: %q %q", code, detail)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// TestCheckHello: the verdict for each kind of first bytes.
func TestCheckHello(t *testing.T) {
	var pats []hostname.Pattern
	for _, s := range []string{"api.example.com:443", "203.0.113.7:443"} {
		p, _ := hostname.ParsePattern(s)
		pats = append(pats, p)
	}
	cl := &core.Client{Client: &config.Client{Patterns: pats}}
	hi := []byte{0x16}
	for _, tt := range []struct {
		name, host string
		hl         hello
		code       string
		closed     bool
	}{
		{"allowed SNI", "api.example.com", hello{pre: hi, tls: true, sni: "api.example.com"}, "", false},
		{"SNI in another spelling", "api.example.com", hello{pre: hi, tls: true, sni: "API.Example.COM"}, "", false},
		{"another tenant", "api.example.com", hello{pre: hi, tls: true, sni: "other.example.com"}, apierr.CodeSNINotAllowed, false},
		// Names that only map to the allowed one reach a server's default host.
		{"fullwidth SNI", "api.example.com", hello{pre: hi, tls: true, sni: "\uff41\uff50\uff49.example.com"}, apierr.CodeSNINotAllowed, false},
		{"ideographic full stop", "api.example.com", hello{pre: hi, tls: true, sni: "api\u3002example.com"}, apierr.CodeSNINotAllowed, false},
		// RFC 6066 forbids an IP as SNI: the server takes it to its default host.
		{"IP SNI for a name", "api.example.com", hello{pre: hi, tls: true, sni: "203.0.113.7"}, apierr.CodeSNINotAllowed, false},
		{"IP SNI for that IP", "203.0.113.7", hello{pre: hi, tls: true, sni: "203.0.113.7"}, "", false},
		{"fullwidth SNI for an IP", "203.0.113.7", hello{pre: hi, tls: true, sni: "\uff41pi.example.com"}, apierr.CodeSNINotAllowed, false},
		{"SNI with a port (malformed)", "api.example.com", hello{pre: hi, tls: true, sni: "api.example.com:8443"}, apierr.CodeSNINotAllowed, false},
		{"no SNI for a name", "api.example.com", hello{pre: hi, tls: true}, apierr.CodeSNINotAllowed, false},
		{"no SNI for an IP", "203.0.113.7", hello{pre: hi, tls: true}, "", false},
		{"allowed SNI for an IP", "203.0.113.7", hello{pre: hi, tls: true, sni: "api.example.com"}, "", false},
		{"other SNI for an IP", "203.0.113.7", hello{pre: hi, tls: true, sni: "other.example.com"}, apierr.CodeSNINotAllowed, false},
		{"ECH", "api.example.com", hello{pre: hi, tls: true, sni: "api.example.com", ech: true}, apierr.CodeSNINotAllowed, false},
		{"not TLS", "api.example.com", hello{pre: []byte("S"), err: errNotTLS}, apierr.CodeTunnelNotTLS, false},
		{"silent", "api.example.com", hello{err: timeoutErr{}, read: timeoutErr{}}, apierr.CodeTunnelNotTLS, false},
		{"half a hello, then silent", "api.example.com", hello{pre: hi, err: timeoutErr{}, read: timeoutErr{}}, apierr.CodeTunnelNotTLS, false},
		{"closed at once", "api.example.com", hello{err: io.EOF, read: io.EOF}, "", true},
	} {
		code, detail := checkHello(cl, tt.host, 443, tt.hl)
		if code != tt.code || (code == "" && (detail != "") != tt.closed) {
			t.Errorf("%s: code %q detail %q; want code %q (closed %v)", tt.name, code, detail, tt.code, tt.closed)
		}
	}
}
