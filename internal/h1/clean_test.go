package h1

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/testutil"
)

// holdConn queues writes while hold is set, so a test partner can put a
// response and what follows it into one TCP write: they reach the client's
// socket together, as they do from a fast partner, and crypto/tls reads
// both in one go.
type holdConn struct {
	net.Conn
	mu   sync.Mutex
	hold bool
	buf  []byte
}

func (h *holdConn) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hold {
		h.buf = append(h.buf, p...)
		return len(p), nil
	}
	return h.Conn.Write(p)
}

// flush sends what was held except the last keep bytes, and holds those.
func (h *holdConn) flush(keep int) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	out, rest := h.buf[:len(h.buf)-keep], append([]byte(nil), h.buf[len(h.buf)-keep:]...)
	// tls.Conn.CloseWrite leaves an expired write deadline behind, so
	// that later writes fail; the held ones must still go out.
	h.Conn.SetWriteDeadline(time.Time{})
	h.Conn.Write(out)
	h.buf = nil
	h.hold = false
	return rest
}

// strayPartner answers every request with its own path as the body. After
// its very first response it sends stray: a separate write (a
// separate TLS record) in the same TCP segment as the response, or, with
// split, all but its last three bytes there and the rest when the next
// request arrives. Whatever the client then reads first would be stray.
func strayPartner(t *testing.T, useTLS bool, answerFirst func(path string) string, stray string, split bool) (url string, cfg *tls.Config, srv *testutil.TCPServer) {
	var srvTLS *tls.Config
	if useTLS {
		hs := httptest.NewUnstartedServer(nil)
		hs.StartTLS()
		hs.Close()
		srvTLS = hs.TLS
		cfg = hs.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	}
	var once sync.Once
	srv = testutil.NewTCPServer(t, func(c net.Conn) {
		hc := &holdConn{Conn: c}
		var w io.Writer = hc
		var rd io.Reader = c
		var tc *tls.Conn
		if useTLS {
			tc = tls.Server(hc, srvTLS)
			if tc.Handshake() != nil {
				return
			}
			w, rd = tc, tc
		}
		br := bufio.NewReader(rd)
		var rest []byte
		for {
			r, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, r.Body)
			if rest != nil {
				c.Write(rest)
				rest = nil
			}
			first := false
			once.Do(func() { first = true })
			if !first {
				io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(r.URL.Path))+"\r\n\r\n"+r.URL.Path)
				continue
			}
			hc.mu.Lock()
			hc.hold = true
			hc.mu.Unlock()
			io.WriteString(w, answerFirst(r.URL.Path))
			if stray == "close_notify" {
				tc.CloseWrite()
			} else if stray != "" {
				io.WriteString(w, stray)
			}
			keep := 0
			if split {
				keep = 3
			}
			rest = hc.flush(keep)
			if len(rest) == 0 {
				rest = nil
			}
		}
	})
	scheme := "http://"
	if useTLS {
		scheme = "https://"
	}
	return scheme + srv.Addr, cfg, srv
}

func okFor(path string) string {
	return "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(path)) + "\r\n\r\n" + path
}

const strayAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray"

// TestNoReuseAfterStrayBytes: whatever a partner sends after a complete
// response (a second response, a body longer than announced, a body on a
// HEAD, 204 or 304, a half-received TLS record) must never become the next
// request's answer, over TLS as over plain TCP. Informational answers and
// a session ticket are not stray: they leave the connection reusable.
func TestNoReuseAfterStrayBytes(t *testing.T) {
	for _, tt := range []struct {
		name, method string
		first        func(path string) string
		stray        string
		split        bool
		reused       bool
	}{
		{name: "clean", method: "GET", first: okFor, reused: true},
		{name: "1xx first", method: "GET", first: func(p string) string {
			return "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n" + okFor(p)
		}, reused: true},
		{name: "extra response", method: "GET", first: okFor, stray: strayAnswer},
		{name: "extra response half received", method: "GET", first: okFor, stray: strayAnswer, split: true},
		{name: "body longer than content-length", method: "GET", first: okFor, stray: "HTTP/1.1 200 OK\r\n"},
		{name: "head with a body", method: "HEAD", first: func(string) string { return "HTTP/1.1 200 OK\r\nContent-Length: 41\r\n\r\n" }, stray: strayAnswer},
		{name: "204 with a body", method: "GET", first: func(string) string { return "HTTP/1.1 204 No Content\r\n\r\n" }, stray: strayAnswer},
		{name: "304 with a body", method: "GET", first: func(string) string { return "HTTP/1.1 304 Not Modified\r\n\r\n" }, stray: strayAnswer},
		{name: "partner closes after the response", method: "GET", first: okFor, stray: "close_notify"},
	} {
		for _, useTLS := range []bool{false, true} {
			name := tt.name + "/http"
			if useTLS {
				name = tt.name + "/https"
			}
			if tt.stray == "close_notify" && !useTLS {
				continue // TestPartnerClosedTheIdleConnection covers TCP
			}
			t.Run(name, func(t *testing.T) {
				url, cfg, srv := strayPartner(t, useTLS, tt.first, tt.stray, tt.split)
				c := newClient()
				c.TLS = cfg
				resp, _, err := get(t, c, tt.method, url+"/first", "")
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode/100 == 1 {
					t.Fatalf("status %d", resp.StatusCode)
				}
				if pooled := c.Idle() == 1; pooled != tt.reused {
					t.Errorf("connection pooled = %v, want %v", pooled, tt.reused)
				}
				// A POST read a stray answer as its own, or failed on it with
				// a 502 after the partner had processed it (a retry, then a
				// double charge).
				for _, next := range [][3]string{{"POST", "/second", "{}"}, {"GET", "/third", ""}} {
					_, body, err := get(t, c, next[0], url+next[1], next[2])
					if err != nil || body != next[1] {
						t.Fatalf("%s %s answered %q (err %v): another request's bytes", next[0], next[1], body, err)
					}
				}
				if tt.reused && srv.Accepts.Load() != 1 {
					t.Errorf("%d connections, want the one reused", srv.Accepts.Load())
				}
			})
		}
	}
}

// TestTenantsDoNotShareConnections: a connection carries the requests of
// one tenant only, so whatever one client provokes on it cannot reach
// another.
func TestTenantsDoNotShareConnections(t *testing.T) {
	var seen log
	u := newUpstream(t, answer(ok, &seen))
	c := newClient()
	for range 2 {
		for _, tenant := range []string{"a", "b"} {
			req, _ := http.NewRequest("GET", "http://"+u.Addr+"/", nil)
			resp, err := c.Do(tenant, req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	if n := u.Accepts.Load(); n != 2 || c.Idle() != 2 {
		t.Errorf("%d connections, %d idle, for two tenants: want 2 and 2", n, c.Idle())
	}
}
