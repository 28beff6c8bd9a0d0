package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/apierr"
	"github.com/outgate/outgate/internal/audit"
	"github.com/outgate/outgate/internal/netguard"
)

// These tests drive Do with real loopback partners and a plain
// http.Transport: what is under test is the copy and the error mapping, not
// the egress policy (internal/egress and internal/server test that).

// gateway serves Do for every request, sending it to target, and hands each
// request's audit record (and the error Do returned) to the test.
type gateway struct {
	*httptest.Server
	records chan *audit.Record
}

func newGateway(t *testing.T, target string, to Timeouts) *gateway {
	t.Helper()
	g := &gateway{records: make(chan *audit.Record, 16)}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &audit.Record{}
		defer func() { g.records <- rec }()
		out, err := Request(r.Context(), r, target+r.URL.Path, "partner.test", nil)
		if err != nil {
			t.Error(err)
			return
		}
		if e := Do(w, out, tr, to, rec); e != nil {
			rec.Status, rec.Reason = e.Status, e.Code
			apierr.Write(w, "", e)
		}
	}))
	t.Cleanup(g.Close)
	return g
}

func (g *gateway) record(t *testing.T) *audit.Record {
	t.Helper()
	select {
	case r := <-g.records:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no audit record")
	}
	return nil
}

func TestRequestRebuildsTheClientsRequest(t *testing.T) {
	in := httptest.NewRequest("POST", "http://gw/pay/v1/charges?x=1", strings.NewReader("amount=1"))
	in.Header.Set("Connection", "X-Drop")
	in.Header.Set("X-Drop", "hop")
	in.Header.Set("X-Forwarded-For", "10.0.0.1")
	in.Header.Set("Via", "1.1 client-proxy")
	in.Header.Set("Outgate-Key", "secret")
	in.Header.Set("Idempotency-Key", "k1")
	in.Header.Set("Accept", "application/json")
	out, err := Request(context.Background(), in, "https://api.partner.test/v1/charges", "api.partner.test", []string{"Via"})
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"Connection", "X-Drop", "X-Forwarded-For", "Outgate-Key"} {
		if v := out.Header.Get(gone); v != "" {
			t.Errorf("%s reached the partner: %q", gone, v)
		}
	}
	if out.Header.Get("Via") != "1.1 client-proxy" || out.Header.Get("Accept") != "application/json" {
		t.Errorf("kept headers lost: %v", out.Header)
	}
	if out.Host != "api.partner.test" || out.URL.String() != "https://api.partner.test/v1/charges" {
		t.Errorf("aimed at %s (Host %s)", out.URL, out.Host)
	}
	if ua, ok := out.Header["User-Agent"]; !ok || len(ua) != 1 || ua[0] != "" {
		t.Errorf("User-Agent %q: Go would add its own", ua)
	}
	// Stored under a name Go's transport does not count as replayable, so it
	// never re-sends the POST by itself; the partner reads the same header.
	if _, ok := out.Header["Idempotency-Key"]; ok || len(out.Header["idempotency-key"]) != 1 || out.Header["idempotency-key"][0] != "k1" {
		t.Errorf("idempotency key stored as %v", out.Header)
	}
	if out.ContentLength != 8 || out.Body == nil {
		t.Errorf("body: %d %v", out.ContentLength, out.Body)
	}

	// A GET's key stays as it was (Go may retry a GET anyway), and an empty
	// body is no body at all.
	get := httptest.NewRequest("GET", "http://gw/pay/x", http.NoBody)
	get.Header.Set("Idempotency-Key", "k2")
	out, _ = Request(context.Background(), get, "http://p.test/x", "p.test", nil)
	if out.Header["Idempotency-Key"] == nil || out.Body != nil || out.ContentLength != 0 {
		t.Errorf("GET: %v, body %v, length %d", out.Header, out.Body, out.ContentLength)
	}
}

// TestDoStreamsTheAnswer: status, headers and trailers come through; a
// partner's Connection header cannot name away a header the gateway sets,
// and hop-by-hop headers stay behind.
func TestDoStreamsTheAnswer(t *testing.T) {
	p := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Connection", "Outgate-Request-Id, X-Secret-Hop")
		w.Header().Set("X-Secret-Hop", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Trailer", "X-Checksum")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "created")
		w.Header().Set("X-Checksum", "abc")
		w.Header().Set(http.TrailerPrefix+"X-Late", "undeclared")
	}))
	defer p.Close()
	g := newGateway(t, p.URL, Timeouts{Header: 5 * time.Second})
	resp, err := http.Post(g.URL+"/x", "text/plain", strings.NewReader("12345"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || string(b) != "created" {
		t.Fatalf("%d %q", resp.StatusCode, b)
	}
	if resp.Header.Get("X-Secret-Hop") != "" || resp.Header.Get("Keep-Alive") != "" {
		t.Errorf("hop-by-hop headers reached the client: %v", resp.Header)
	}
	if resp.Trailer.Get("X-Checksum") != "abc" || resp.Trailer.Get("X-Late") != "undeclared" {
		t.Errorf("trailers: %v", resp.Trailer)
	}
	rec := g.record(t)
	if rec.Status != 201 || rec.BytesIn != 5 || rec.BytesOut != 7 {
		t.Errorf("record: status %d in %d out %d", rec.Status, rec.BytesIn, rec.BytesOut)
	}
}

// TestDoFlushesEventStreams: the client reads the first event while the
// partner still holds the second (nothing buffered in the gateway).
func TestDoFlushesEventStreams(t *testing.T) {
	second := make(chan struct{})
	defer func() {
		select {
		case <-second:
		default:
			close(second)
		}
	}()
	p := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-second
		io.WriteString(w, "data: two\n\n")
	}))
	defer p.Close()
	g := newGateway(t, p.URL, Timeouts{Header: 5 * time.Second})
	resp, err := http.Get(g.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "data: one\n" {
		t.Fatalf("first event: %q %v", line, err)
	}
	close(second)
	rest, _ := io.ReadAll(br)
	if string(rest) != "\ndata: two\n\n" {
		t.Errorf("rest: %q", rest)
	}
}

// TestDoFailures: each way a partner fails maps to its code, and a failure
// after the status line breaks the client's response rather than ending it
// as if complete.
func TestDoFailures(t *testing.T) {
	hold := make(chan struct{})
	p := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/silent": // never answers
			<-hold
		// Both stream without a length (chunked): a gateway that ended its
		// own response normally would hand the client a clean, truncated
		// answer; only the abort makes the break visible.
		case "/stalls": // starts, then stops sending
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			<-hold
		case "/cut": // sends 7 bytes and closes mid-stream
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			conn, _, _ := http.NewResponseController(w).Hijack()
			conn.Close()
		}
	}))
	defer p.Close()
	defer close(hold) // before p.Close, which waits for the held handlers
	g := newGateway(t, p.URL, Timeouts{Header: 300 * time.Millisecond, BodyIdle: 300 * time.Millisecond})

	t.Run("no answer", func(t *testing.T) {
		resp, err := http.Get(g.URL + "/silent")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		rec := g.record(t)
		if resp.StatusCode != 504 || resp.Header.Get("Outgate-Error") != apierr.CodeUpstreamTimeout || rec.Decision != audit.Error {
			t.Errorf("%d %q, record %+v", resp.StatusCode, resp.Header.Get("Outgate-Error"), rec)
		}
	})
	for _, tt := range []struct{ path, reason string }{{"/stalls", "upstream_body_idle"}, {"/cut", "upstream_body_broken"}} {
		t.Run(tt.path, func(t *testing.T) {
			// The connection is aborted: the client sees the request or
			// its body fail (whether the status line had left the
			// gateway's buffer yet or not), never a complete answer.
			resp, err := http.Get(g.URL + tt.path)
			if err == nil {
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil {
					t.Errorf("the client got a complete answer: %q", b)
				}
			}
			if rec := g.record(t); rec.Reason != tt.reason || rec.Status != 200 || rec.BytesOut != 7 {
				t.Errorf("record: %+v", rec)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := l.Addr().String()
		l.Close() // nothing listens there now
		g := newGateway(t, "http://"+addr, Timeouts{Header: 5 * time.Second})
		resp, err := http.Get(g.URL + "/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 502 || resp.Header.Get("Outgate-Error") != apierr.CodeUpstreamUnreachable {
			t.Errorf("%d %q", resp.StatusCode, resp.Header.Get("Outgate-Error"))
		}
		if rec := g.record(t); !strings.Contains(rec.Detail, addr) {
			t.Errorf("the dial error (with its address) belongs in the record's detail: %q", rec.Detail)
		}
	})
}

// TestClassify: the error a client gets for each RoundTrip failure, and its
// audit decision; details (addresses) go to the record only.
func TestClassify(t *testing.T) {
	blocked := &netguard.BlockedError{Host: "metadata.test", Addr: netip.MustParseAddr("169.254.169.254"), Reason: netguard.Class("link_local")}
	canceled, cancel := context.WithCancelCause(context.Background())
	cancel(context.Canceled)
	headerLate, cancel2 := context.WithCancelCause(context.Background())
	cancel2(errHeaderTimeout)
	for _, tt := range []struct {
		name     string
		ctx      context.Context
		err      error
		status   int
		code     string
		decision string
	}{
		{"blocked address", context.Background(), fmt.Errorf("dial: %w", blocked), 403, apierr.CodeDestinationBlocked, audit.Deny},
		{"client left", canceled, context.Canceled, StatusClientClosed, "client_closed", audit.Error},
		{"body too large", context.Background(), &http.MaxBytesError{Limit: 10}, 413, apierr.CodeBodyTooLarge, audit.Deny},
		{"header timeout", headerLate, context.Canceled, 504, apierr.CodeUpstreamTimeout, audit.Error},
		{"deadline", context.Background(), context.DeadlineExceeded, 504, apierr.CodeUpstreamTimeout, audit.Error},
		{"dns", context.Background(), &net.DNSError{Err: "no such host", Name: "x.test"}, 502, apierr.CodeUpstreamUnreachable, audit.Error},
		{"refused", context.Background(), &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, 502, apierr.CodeUpstreamUnreachable, audit.Error},
		{"reset mid-exchange", context.Background(), &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset")}, 502, apierr.CodeBadGateway, audit.Error},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &audit.Record{}
			e := classify(tt.ctx, tt.err, rec)
			if e.Status != tt.status || e.Code != tt.code || rec.Decision != tt.decision {
				t.Errorf("got %d %s (%s), want %d %s (%s)", e.Status, e.Code, rec.Decision, tt.status, tt.code, tt.decision)
			}
			if strings.Contains(e.Message, "169.254") || rec.Detail == "" {
				t.Errorf("message %q, detail %q", e.Message, rec.Detail)
			}
		})
	}
}

func TestRefuseBody(t *testing.T) {
	for _, tt := range []struct {
		method  string
		body    string
		allowed []string
		refused bool
	}{
		{"GET", "", nil, false},
		{"GET", "x", nil, true},
		{"DELETE", "x", nil, true},
		{"DELETE", "x", []string{"DELETE"}, false},
		{"TRACE", "x", []string{"DELETE"}, true},
		{"POST", "x", nil, false},
	} {
		r := httptest.NewRequest(tt.method, "http://gw/p/x", strings.NewReader(tt.body))
		allowed := func(m string) bool {
			for _, a := range tt.allowed {
				if a == m {
					return true
				}
			}
			return false
		}
		e := RefuseBody(r, allowed)
		if (e != nil) != tt.refused || (e != nil && (e.Status != 400 || e.Code != apierr.CodeBodyNotAllowed)) {
			t.Errorf("%s with body %q, allowed %v: %v", tt.method, tt.body, tt.allowed, e)
		}
	}
}
