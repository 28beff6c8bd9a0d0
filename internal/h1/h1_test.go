package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/testutil"
)

// newUpstream is a raw TCP server on loopback: each connection runs serve,
// so a test can answer exactly as a misbehaving partner would.
func newUpstream(t *testing.T, serve func(c net.Conn, br *bufio.Reader)) *testutil.TCPServer {
	t.Helper()
	return testutil.NewTCPServer(t, func(c net.Conn) { serve(c, bufio.NewReader(c)) })
}

// answer reads requests and answers each with resp until the connection
// ends; seen records "METHOD path body" for every request received.
func answer(resp string, seen *log) func(net.Conn, *bufio.Reader) {
	return func(c net.Conn, br *bufio.Reader) {
		for {
			r, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			b, _ := io.ReadAll(r.Body)
			seen.add(fmt.Sprintf("%s %s %s", r.Method, r.URL.Path, b))
			if _, err := io.WriteString(c, resp); err != nil {
				return
			}
		}
	}
}

type log struct {
	mu    sync.Mutex
	lines []string
}

func (l *log) add(s string) {
	l.mu.Lock()
	l.lines = append(l.lines, s)
	l.mu.Unlock()
}

func (l *log) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

func newClient() *Client {
	return &Client{Dial: (&net.Dialer{}).DialContext}
}

func get(t *testing.T, c *Client, method, url, body string) (*http.Response, string, error) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

const ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

func TestReusesOneConnection(t *testing.T) {
	var seen log
	u := newUpstream(t, answer(ok, &seen))
	c := newClient()
	for i := range 3 {
		resp, body, err := get(t, c, "GET", fmt.Sprintf("http://%s/n%d", u.Addr, i), "")
		if err != nil || resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %v %v %q", i, resp, err, body)
		}
	}
	if n := u.Accepts.Load(); n != 1 {
		t.Errorf("%d connections for three sequential requests, want 1", n)
	}
	if c.Idle() != 1 {
		t.Errorf("idle = %d, want 1", c.Idle())
	}
}

// TestPartnerClosedTheIdleConnection: a partner that closes a keep-alive
// connection between requests (Node's 5 s default, nginx's 75 s) costs a
// new connection, not a failed request, POST included, and nothing twice.
func TestPartnerClosedTheIdleConnection(t *testing.T) {
	var seen log
	closed := make(chan struct{}, 1)
	u := newUpstream(t, func(c net.Conn, br *bufio.Reader) {
		answer(ok, &seen)(&onceConn{Conn: c, closed: closed}, br)
	})
	c := newClient()
	for _, tt := range []struct{ method, body string }{{"GET", ""}, {"POST", `{"amount":1000}`}, {"POST", ""}, {"GET", ""}} {
		resp, body, err := get(t, c, tt.method, "http://"+u.Addr+"/x", tt.body)
		if err != nil || resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("%s %q: %v %q", tt.method, tt.body, err, body)
		}
		<-closed // the partner's FIN has arrived before the next request
	}
	if n := u.Accepts.Load(); n != 4 {
		t.Errorf("%d connections, want 4 (one per request)", n)
	}
	want := []string{"GET /x ", `POST /x {"amount":1000}`, "POST /x ", "GET /x "}
	if got := seen.all(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("partner saw %q, want %q", got, want)
	}
}

// onceConn closes the connection after the first response is written.
type onceConn struct {
	net.Conn
	closed chan struct{}
}

func (o *onceConn) Write(p []byte) (int, error) {
	n, err := o.Conn.Write(p)
	o.Conn.Close()
	o.closed <- struct{}{}
	return n, err
}

// TestDiesAfterReadingTheRequest: the partner takes the request on a
// reused connection and closes it without a word. The liveness peek cannot
// see this coming; a GET is sent again on a new connection (as
// http.Transport does), a POST fails and reached the partner once.
func TestDiesAfterReadingTheRequest(t *testing.T) {
	var seen log
	u := newUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for i := 0; ; i++ {
			r, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			b, _ := io.ReadAll(r.Body)
			seen.add(fmt.Sprintf("%s %s %s", r.Method, r.URL.Path, b))
			if i == 1 {
				return // the second request on a connection is swallowed
			}
			io.WriteString(c, ok)
		}
	})
	c := newClient()
	if _, _, err := get(t, c, "GET", "http://"+u.Addr+"/warm", ""); err != nil {
		t.Fatal(err)
	}
	if resp, body, err := get(t, c, "GET", "http://"+u.Addr+"/read", ""); err != nil || resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("GET: %v %q", err, body)
	}
	for _, body := range []string{"1000", ""} {
		if body == "" { // a fresh connection, then the POST on it
			get(t, c, "GET", "http://"+u.Addr+"/warm", "")
		}
		if _, _, err := get(t, c, "POST", "http://"+u.Addr+"/pay", body); err == nil {
			t.Fatalf("POST %q on a connection that died unanswered succeeded", body)
		}
	}
	want := []string{"GET /warm ", "GET /read ", "GET /read ", "POST /pay 1000", "GET /warm ", "POST /pay "}
	if got := seen.all(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("partner saw %q, want %q", got, want)
	}
}

func TestResponses(t *testing.T) {
	for _, tt := range []struct {
		name, method, reply string
		status              int
		body, trailer       string
		reused              bool
		err                 string
	}{
		{name: "content-length", method: "GET", reply: ok, status: 200, body: "ok", reused: true},
		{name: "chunked with trailer", method: "GET", reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n2\r\nhi\r\n0\r\nX-Sum: 7\r\n\r\n", status: 200, body: "hi", trailer: "7", reused: true},
		{name: "head", method: "HEAD", reply: "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", status: 200, reused: true},
		{name: "204", method: "GET", reply: "HTTP/1.1 204 No Content\r\n\r\n", status: 204, reused: true},
		{name: "informational first", method: "GET", reply: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + ok, status: 200, body: "ok", reused: true},
		{name: "connection close", method: "GET", reply: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", status: 200, body: "ok"},
		{name: "http/1.0", method: "GET", reply: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", status: 200, body: "ok"},
		{name: "until close", method: "GET", reply: "HTTP/1.1 200 OK\r\n\r\nbody until the end", status: 200, body: "body until the end"},
		{name: "bytes after the response", method: "GET", reply: ok + "HTTP/1.1 200 OK\r\n", status: 200, body: "ok"},
		{name: "switching protocols", method: "GET", reply: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", err: "switched protocols"},
		{name: "endless 1xx", method: "GET", reply: strings.Repeat("HTTP/1.1 102 Processing\r\n\r\n", 6) + ok, err: "informational"},
		{name: "not http", method: "GET", reply: "SSH-2.0-OpenSSH\r\n", err: "malformed"},
		{name: "header too large", method: "GET", reply: "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 8<<10) + "\r\n\r\n", err: "too large"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := newUpstream(t, func(c net.Conn, br *bufio.Reader) {
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, r.Body)
					io.WriteString(c, tt.reply)
					if strings.Contains(tt.reply, "until the end") {
						return
					}
				}
			})
			c := newClient()
			c.MaxHeaderBytes = 4 << 10
			req, _ := http.NewRequest(tt.method, "http://"+u.Addr+"/", nil)
			resp, err := c.RoundTrip(req)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				if c.Idle() != 0 {
					t.Error("a failed connection went back to the pool")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != tt.status || string(b) != tt.body || resp.Trailer.Get("X-Sum") != tt.trailer {
				t.Fatalf("%d %q trailer %q err %v", resp.StatusCode, b, resp.Trailer.Get("X-Sum"), err)
			}
			if reused := c.Idle() == 1; reused != tt.reused {
				t.Errorf("connection pooled = %v, want %v", reused, tt.reused)
			}
		})
	}
}

// TestBodyNotReadToTheEnd: a caller that stops reading (the client left)
// must not leave the rest of the body to be read as the next response.
func TestBodyNotReadToTheEnd(t *testing.T) {
	var seen log
	u := newUpstream(t, answer("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", &seen))
	c := newClient()
	req, _ := http.NewRequest("GET", "http://"+u.Addr+"/", nil)
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Read(make([]byte, 3))
	resp.Body.Close()
	if c.Idle() != 0 {
		t.Fatal("a half-read connection went back to the pool")
	}
	if _, body, err := get(t, c, "GET", "http://"+u.Addr+"/", ""); err != nil || body != "0123456789" {
		t.Fatalf("next request: %v %q", err, body)
	}
}

// TestCancel: a cancelled request (client gone, a gateway timeout) stops
// waiting at once, before the head and while the body streams, and its
// connection is closed, never pooled.
func TestCancel(t *testing.T) {
	closed := make(chan struct{}, 2)
	u := newUpstream(t, func(c net.Conn, br *bufio.Reader) {
		r, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if r.URL.Path == "/body" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234")
		}
		io.Copy(io.Discard, br) // until the gateway closes the connection
		closed <- struct{}{}
	})
	c := newClient()
	for _, path := range []string{"/head", "/body"} {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+u.Addr+path, nil)
		resp, err := c.RoundTrip(req)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err == nil {
			t.Fatalf("%s: no error after cancel", path)
		}
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the upstream connection stayed open", path)
		}
	}
	if c.Idle() != 0 {
		t.Error("a cancelled connection went back to the pool")
	}
}

func TestRequestBody(t *testing.T) {
	var seen log
	var headers atomic.Value
	u := newUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for {
			r, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			b, _ := io.ReadAll(r.Body)
			headers.Store(fmt.Sprintf("%d %q", r.ContentLength, r.TransferEncoding))
			seen.add(fmt.Sprintf("%s %d", r.Method, len(b)))
			io.WriteString(c, ok)
		}
	})
	c := newClient()
	body := strings.Repeat("x", MaxBufferedBody)
	if _, _, err := get(t, c, "PUT", "http://"+u.Addr+"/", body); err != nil {
		t.Fatal(err)
	}
	if h := headers.Load(); h != fmt.Sprintf("%d []", MaxBufferedBody) {
		t.Errorf("framing %v, want Content-Length %d", h, MaxBufferedBody)
	}

	// A client body that breaks off fails the request before the partner
	// sees any of it.
	req, _ := http.NewRequest("POST", "http://"+u.Addr+"/", io.MultiReader(strings.NewReader("12"), errReader{}))
	req.ContentLength = 10
	if _, err := c.RoundTrip(req); !errors.Is(err, errBroken) {
		t.Errorf("err = %v, want the body's error", err)
	}
	if got := seen.all(); len(got) != 1 || got[0] != fmt.Sprintf("PUT %d", MaxBufferedBody) {
		t.Errorf("partner saw %q", got)
	}
}

var errBroken = errors.New("client body broke")

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errBroken }

func TestEligible(t *testing.T) {
	for _, tt := range []struct {
		body   io.Reader
		length int64
		want   bool
	}{
		{nil, 0, true},
		{http.NoBody, 0, true},
		{strings.NewReader("x"), 1, true},
		{strings.NewReader("x"), MaxBufferedBody, true},
		{strings.NewReader("x"), MaxBufferedBody + 1, false},
		{strings.NewReader("x"), -1, false}, // streamed (chunked)
	} {
		req, _ := http.NewRequest("POST", "http://a.example/", nil)
		switch b := tt.body.(type) {
		case nil:
		case io.ReadCloser:
			req.Body = b
		default:
			req.Body = io.NopCloser(b)
		}
		req.ContentLength = tt.length
		if got := Eligible(req); got != tt.want {
			t.Errorf("length %d: %v, want %v", tt.length, got, tt.want)
		}
	}
}

// TestTLS: https upstreams are verified and offered HTTP/1.1 only, even by
// a server that prefers HTTP/2.
func TestTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "proto %d", r.ProtoMajor)
	}))
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = stdlog.New(io.Discard, "", 0) // the refused handshakes below
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c := newClient()
	if _, _, err := get(t, c, "GET", srv.URL, ""); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("an unknown certificate was accepted: %v", err)
	}
	c.TLS = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	for range 2 {
		if _, body, err := get(t, c, "GET", srv.URL, ""); err != nil || body != "proto 1" {
			t.Fatalf("%v %q", err, body)
		}
	}
	if c.Idle() != 1 {
		t.Errorf("idle = %d, want the one TLS connection", c.Idle())
	}
	// The certificate is for example.com and 127.0.0.1: another name fails.
	c.TLS.ServerName = "other.test"
	c.CloseIdleConnections()
	if _, _, err := get(t, c, "GET", srv.URL, ""); err == nil {
		t.Error("a certificate for another name was accepted")
	}
}

func TestTLSHandshakeTimeout(t *testing.T) {
	u := newUpstream(t, func(c net.Conn, br *bufio.Reader) { io.Copy(io.Discard, br) })
	c := newClient()
	c.TLSHandshakeTimeout = 200 * time.Millisecond
	_, _, err := get(t, c, "GET", "https://"+u.Addr+"/", "")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want a deadline", err)
	}
}

// parallel has n requests to url in flight at once (each holds its own
// connection), then reads and closes them all.
func parallel(t *testing.T, c *Client, url string, n int) {
	t.Helper()
	var resps []*http.Response
	for range n {
		req, _ := http.NewRequest("GET", url, nil)
		resp, err := c.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resps = append(resps, resp)
	}
	for _, r := range resps {
		io.ReadAll(r.Body)
		r.Body.Close()
	}
}

// TestPoolBounds: idle connections are capped per upstream and overall (the
// oldest goes first), expire, and all go on CloseIdleConnections.
func TestPoolBounds(t *testing.T) {
	var seen log
	a := newUpstream(t, answer(ok, &seen))
	b := newUpstream(t, answer(ok, &seen))
	c := newClient()
	c.MaxIdlePerHost, c.MaxIdle = 2, 3
	c.IdleTimeout = 300 * time.Millisecond
	// Four requests in flight at once to a: four connections, two kept.
	parallel(t, c, "http://"+a.Addr+"/", 4)
	if n := c.Idle(); n != 2 {
		t.Fatalf("idle after 4 parallel requests = %d, want 2", n)
	}
	// Two to b: the pool is full at 3, so a's oldest makes room.
	parallel(t, c, "http://"+b.Addr+"/", 2)
	if n := c.Idle(); n != 3 {
		t.Fatalf("idle = %d, want 3", n)
	}
	c.mu.Lock()
	na, nb := len(c.idle[poolKey{target: "http://" + a.Addr}]), len(c.idle[poolKey{target: "http://" + b.Addr}]) // tenant ""
	c.mu.Unlock()
	if na != 1 || nb != 2 {
		t.Errorf("idle per upstream a=%d b=%d, want 1 and 2", na, nb)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.Idle() != 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := c.Idle(); n != 0 {
		t.Fatalf("%d idle connections outlived IdleTimeout", n)
	}

	get(t, c, "GET", "http://"+a.Addr+"/", "")
	c.CloseIdleConnections()
	if c.Idle() != 0 {
		t.Fatal("CloseIdleConnections left connections")
	}
	// A closed client still serves requests in flight on a replaced
	// config, but keeps nothing.
	if _, body, err := get(t, c, "GET", "http://"+a.Addr+"/", ""); err != nil || body != "ok" {
		t.Fatalf("after close: %v %q", err, body)
	}
	if c.Idle() != 0 {
		t.Error("a closed client pooled a connection")
	}
}

func TestRefusesWhatItCannotCarry(t *testing.T) {
	c := newClient()
	for _, tt := range []struct{ url, err string }{{"ftp://a.example/", "scheme"}, {"http:///x", "no host"}} {
		if _, _, err := get(t, c, "GET", tt.url, ""); err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: %v", tt.url, err)
		}
	}
	req, _ := http.NewRequest("POST", "http://a.example/", strings.NewReader("x"))
	req.ContentLength = -1
	if _, err := c.RoundTrip(req); err == nil {
		t.Error("a streamed body was taken")
	}
}

// TestNoRetryOnAFreshConnection: a partner that drops requests unanswered
// sees each GET once when the connection was new: only a reused connection
// can have died of old age.
func TestNoRetryOnAFreshConnection(t *testing.T) {
	var seen log
	u := newUpstream(t, func(c net.Conn, br *bufio.Reader) {
		if r, err := http.ReadRequest(br); err == nil {
			seen.add(r.Method + " " + r.URL.Path)
		}
	})
	if _, _, err := get(t, newClient(), "GET", "http://"+u.Addr+"/x", ""); err == nil {
		t.Fatal("no error from a partner that closed unanswered")
	}
	if got := seen.all(); len(got) != 1 {
		t.Errorf("partner saw %q, want the GET once", got)
	}
}

// FuzzUpstreamResponse: whatever a partner answers, the client neither
// panics nor hangs, and a connection goes back to the pool only after a
// response whose body was read to its end without error.
func FuzzUpstreamResponse(f *testing.F) {
	for _, s := range []string{
		ok,
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n2\r\nhi\r\n0\r\nX-Sum: 7\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\n" + ok,
		"HTTP/1.0 200 OK\r\n\r\nuntil close",
		"HTTP/1.1 101 Switching Protocols\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\nabc",
		ok + ok,
	} {
		f.Add([]byte(s))
	}
	var reply atomic.Value
	srv := testutil.NewTCPServer(f, func(c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
			c.Write(reply.Load().([]byte))
		}
	})
	url := "http://" + srv.Addr + "/"
	f.Fuzz(func(t *testing.T, b []byte) {
		reply.Store(b)
		c := newClient()
		c.MaxHeaderBytes = 4 << 10
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := c.RoundTrip(req)
		if err != nil {
			if c.Idle() != 0 {
				t.Fatalf("pooled after %v", err)
			}
			return
		}
		_, rerr := io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if c.Idle() != 0 && rerr != nil {
			t.Fatalf("pooled after a body that broke: %v", rerr)
		}
		if ctx.Err() != nil {
			t.Fatal("the exchange did not end within 10 s")
		}
		c.CloseIdleConnections()
	})
}

// TestPartnerKeepAliveTimeout: a partner that announces its idle timeout
// (Node: "Keep-Alive: timeout=5") and drops a connection just as a request
// arrives on it. outgate stops reusing such a connection a second before
// the announced time, so the POST goes on a new one instead of failing.
func TestPartnerKeepAliveTimeout(t *testing.T) {
	// One clock for the partner and the client, moved by the test: the
	// partner's idle timer and outgate's reuse rule see the same time.
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	var seen log
	u := newUpstream(t, func(c net.Conn, br *bufio.Reader) {
		last := now()
		for {
			r, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, r.Body)
			if now().Sub(last) > 1200*time.Millisecond {
				return // idle too long by its own clock: dropped unanswered
			}
			seen.add(r.Method)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=2\r\nContent-Length: 2\r\n\r\nok")
			last = now()
		}
	})
	c := newClient()
	c.now = now
	for i := range 2 {
		if i == 1 {
			clock.Add(int64(1300 * time.Millisecond)) // past timeout minus the margin
		}
		if _, body, err := get(t, c, "POST", "http://"+u.Addr+"/pay", "1000"); err != nil || body != "ok" {
			t.Fatalf("POST %d: %v %q", i, err, body)
		}
	}
	if n := u.Accepts.Load(); n != 2 {
		t.Errorf("%d connections, want a new one for the second POST", n)
	}
	// Within the announced time the connection is reused.
	if _, _, err := get(t, c, "POST", "http://"+u.Addr+"/pay", "1000"); err != nil || u.Accepts.Load() != 2 {
		t.Errorf("a fresh connection was not reused: %v, %d connections", err, u.Accepts.Load())
	}
}

func TestKeepAliveTimeout(t *testing.T) {
	for _, tt := range []struct {
		header string
		want   time.Duration
	}{
		{"timeout=5, max=100", 5 * time.Second},
		{"max=100, Timeout = 3", 3 * time.Second},
		{"max=100", 0},
		{"timeout=soon", 0},
		{"timeout=-4", 0},
		{"timeout=99999999999999999999", 0},
		{"", 0},
	} {
		h := http.Header{}
		if tt.header != "" {
			h.Set("Keep-Alive", tt.header)
		}
		if got := keepAliveTimeout(h); got != tt.want {
			t.Errorf("%q: %v, want %v", tt.header, got, tt.want)
		}
	}
	// "timeout=1" leaves no time to reuse the connection at all.
	var seen log
	u := newUpstream(t, answer("HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nContent-Length: 2\r\n\r\nok", &seen))
	c := newClient()
	get(t, c, "GET", "http://"+u.Addr+"/", "")
	if c.Idle() != 0 {
		t.Error("a connection the partner keeps for 1 s was pooled")
	}
}

// TestTLSPartnerClosedTheIdleConnection: an HTTPS partner that closes idle
// connections (close_notify, then FIN): the peek sees the alert or the
// close, and the POST goes on a new connection, once.
func TestTLSPartnerClosedTheIdleConnection(t *testing.T) {
	var posts atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			posts.Add(1)
		}
		io.WriteString(w, "ok")
	}))
	srv.Config.IdleTimeout = 100 * time.Millisecond
	closedConns := make(chan struct{}, 8)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closedConns <- struct{}{}
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c := newClient()
	c.TLS = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	if _, _, err := get(t, c, "GET", srv.URL, ""); err != nil {
		t.Fatal(err)
	}
	select { // the partner closes the idle connection
	case <-closedConns:
	case <-time.After(10 * time.Second):
		t.Fatal("the partner never closed its idle connection")
	}
	if _, body, err := get(t, c, "POST", srv.URL, "1000"); err != nil || body != "ok" {
		t.Fatalf("POST after the partner closed the idle connection: %v %q", err, body)
	}
	if n := posts.Load(); n != 1 {
		t.Errorf("the partner saw the POST %d times", n)
	}
}
