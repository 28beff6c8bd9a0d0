package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outgate/outgate/internal/apierr"
	"github.com/outgate/outgate/internal/audit"
	"github.com/outgate/outgate/internal/core"
	"github.com/outgate/outgate/internal/hostname"
	"github.com/outgate/outgate/internal/netguard"
)

// connect handles CONNECT host:port: check, dial the checked address, answer
// 200 and splice bytes both ways until either side closes or the tunnel has
// been idle for tunnel_idle_timeout.
func (h *Handler) connect(c *core.Core, w http.ResponseWriter, r *http.Request, rec *audit.Record) *apierr.E {
	cl, e := authenticate(c, r, rec)
	if e != nil {
		return e
	}
	host, port, err := hostname.SplitTarget(r.Host, 0)
	if err != nil {
		return apierr.New(http.StatusBadRequest, apierr.CodeBadRequest, "CONNECT needs host:port: "+err.Error())
	}
	rec.Target = hostname.JoinTarget(host, port)
	if !cl.MayReach(host, port) {
		return apierr.New(http.StatusForbidden, apierr.CodeForbidden, "this client may not reach "+rec.Target)
	}
	if h.Tunnels.Closing() {
		return apierr.New(http.StatusServiceUnavailable, apierr.CodeShuttingDown, "the gateway is shutting down")
	}
	release, e := cl.AdmitTunnel()
	if e != nil {
		return e
	}
	defer release()

	lim := c.Config.Limits.Resolved
	upstream, err := c.Egress.Dialer.DialContext(r.Context(), "tcp", rec.Target)
	if err != nil {
		rec.Detail = err.Error()
		var be *netguard.BlockedError
		switch {
		case errors.As(err, &be):
			rec.Detail = string(be.Reason)
			return apierr.New(http.StatusForbidden, apierr.CodeDestinationBlocked, "the destination address is not allowed")
		case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
			rec.Decision = audit.Error
			return apierr.New(http.StatusGatewayTimeout, apierr.CodeUpstreamTimeout, "connecting to the destination timed out")
		default:
			rec.Decision = audit.Error
			return apierr.New(http.StatusBadGateway, apierr.CodeUpstreamUnreachable, "could not connect to the destination")
		}
	}
	defer upstream.Close()
	// Registered before the gate's last word: a CloseAll (the egress
	// found wrong, after the gate closed) either finds this tunnel or
	// happened before the check below, which then sees the gate closed.
	// The gate checked before the handler ran is not enough: the dial
	// can take dial_timeout.
	tu, done := h.Tunnels.add(upstream)
	defer done()
	if h.Gate != nil {
		if err := h.Gate(); err != nil {
			rec.Detail = err.Error()
			return &apierr.E{Status: http.StatusServiceUnavailable, Code: apierr.CodeEgressUnverified,
				Message: "the gateway has not yet proven that its calls leave from the deployment's IPs; retry shortly", RetryAfter: 30 * time.Second}
		}
	}

	rc := http.NewResponseController(w)
	client, brw, err := rc.Hijack()
	if err != nil {
		rec.Decision, rec.Detail = audit.Error, "hijack: "+err.Error()
		return apierr.New(http.StatusInternalServerError, apierr.CodeBadGateway, "cannot open a tunnel on this connection")
	}
	defer client.Close()
	h.Tunnels.attach(tu, client)
	rec.Status = http.StatusOK
	client.SetDeadline(time.Time{})
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		rec.Reason = "client_closed"
		return nil
	}
	var pre []byte
	if !cl.MayTunnelRaw(host, port) {
		// Nothing reaches the partner until the client's first bytes, a
		// ClientHello, name a server this client may reach: on a shared (CDN)
		// address the authority alone does not say which tenant it gets.
		client.SetReadDeadline(time.Now().Add(lim.ReadHeaderTimeout))
		hl := readHello(brw.Reader)
		if code, detail := checkHello(cl, host, port, hl); code != "" || detail != "" {
			if code != "" {
				rec.Decision, rec.Reason = audit.Deny, code
			} else {
				rec.Reason = "client_closed"
			}
			rec.Detail = detail
			return nil
		}
		pre = hl.pre
	}
	// Bytes the client sent right after its CONNECT (or after its
	// ClientHello) may already sit in the server's read buffer.
	if n := brw.Reader.Buffered(); n > 0 {
		more, _ := brw.Reader.Peek(n)
		pre = append(pre, more...)
	}
	in, out, reason := splice(client, upstream, pre, lim.TunnelIdleTimeout)
	rec.BytesIn, rec.BytesOut, rec.Reason = in, out, reason
	return nil
}

// checkHello decides whether a tunnel whose client sent hl may go on. It
// returns a code (apierr.CodeSNINotAllowed, apierr.CodeTunnelNotTLS) and a
// detail for the audit line when not; no code but a detail when the client
// left before sending anything.
func checkHello(cl *core.Client, host string, port uint16, hl hello) (code, detail string) {
	if !hl.tls {
		switch {
		case len(hl.pre) == 0 && isTimeout(hl.read):
			return apierr.CodeTunnelNotTLS, "no bytes from the client within read_header_timeout; a protocol where the server speaks first needs raw_tunnels"
		case len(hl.pre) == 0:
			// Closed, reset, or closed by shutdown: nothing was sent to judge.
			return "", "the tunnel closed before the client sent anything"
		case errors.Is(hl.err, errNotTLS):
			return apierr.CodeTunnelNotTLS, "the first bytes are not a TLS ClientHello; a non-TLS destination needs raw_tunnels"
		case isTimeout(hl.read):
			return apierr.CodeTunnelNotTLS, "the ClientHello did not arrive whole within read_header_timeout"
		}
		return apierr.CodeTunnelNotTLS, "no valid ClientHello: " + hl.err.Error()
	}
	if hl.ech {
		return apierr.CodeSNINotAllowed, "the ClientHello carries an encrypted ClientHello (ECH), which hides the server it asks for"
	}
	if hl.sni == "" {
		if _, err := netip.ParseAddr(host); err == nil {
			// An IP destination without a name: the client asked for that
			// address, which its hosts allow.
			return "", ""
		}
		return apierr.CodeSNINotAllowed, "the ClientHello names no server (SNI) for a named destination"
	}
	sni, err := hostname.Normalize(hl.sni)
	if err != nil {
		return apierr.CodeSNINotAllowed, "the ClientHello's server name (SNI) is malformed"
	}
	if sni != strings.ToLower(hl.sni) {
		// Normalize maps fullwidth letters, U+3002 and U-labels to an ASCII
		// name, but the partner gets the bytes as sent: TLS servers match
		// them (ASCII case aside) and send a name they do not know to their
		// default server, on a shared address someone else's. RFC 6066
		// section 3 has SNI in ASCII, so honest clients send the A-label.
		return apierr.CodeSNINotAllowed, "the ClientHello's server name (SNI) " + strconv.Quote(hl.sni) + " is not in ASCII (RFC 6066)"
	}
	if ip, err := netip.ParseAddr(sni); err == nil && ip.String() != host {
		// RFC 6066 section 3 forbids an IP as the server name; no server
		// has it among its names, so it picks its default host, as with no
		// SNI. That is fine only where the client asked for that address.
		return apierr.CodeSNINotAllowed, "the ClientHello names an IP address (" + sni + ") as its server (SNI), and the destination is not that address"
	}
	if !cl.MayReach(sni, port) {
		return apierr.CodeSNINotAllowed, "SNI " + sni + " is not among this client's hosts on port " + strconv.Itoa(int(port))
	}
	return "", ""
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// splice copies both ways. Each direction pushes the idle deadline of both
// connections forward when it moves bytes; when neither has moved any for
// idle, the deadlines fire and the tunnel closes.
func splice(client, upstream net.Conn, pre []byte, idle time.Duration) (in, out int64, reason string) {
	var last atomic.Int64
	touch := func() { last.Store(time.Now().UnixNano()) }
	touch()
	arm := func() {
		d := time.Unix(0, last.Load()).Add(idle)
		client.SetDeadline(d)
		upstream.SetDeadline(d)
	}
	arm()
	if len(pre) > 0 {
		n, err := upstream.Write(pre)
		in += int64(n)
		if err != nil {
			return in, 0, "upstream_closed"
		}
	}
	var wg sync.WaitGroup
	var inN, outN int64
	var reasonOnce sync.Once
	setReason := func(s string) { reasonOnce.Do(func() { reason = s }) }
	pipe := func(dst, src net.Conn, n *int64, who string) {
		defer wg.Done()
		buf := make([]byte, 32<<10)
		for {
			k, err := src.Read(buf)
			if k > 0 {
				touch()
				if werr := writeAll(dst, buf[:k], idle, &last, arm); werr != nil {
					setReason(who + "_write_failed")
					break
				}
				*n += int64(k)
			}
			if err != nil {
				if isTimeout(err) {
					// The deadline fired: a real idle timeout only if nobody
					// moved bytes since the deadline was set.
					if time.Since(time.Unix(0, last.Load())) < idle {
						arm()
						continue
					}
					setReason("idle_timeout")
				} else if err == io.EOF {
					setReason(who + "_closed")
				} else {
					setReason(who + "_error")
				}
				break
			}
		}
		// Close both so the other direction ends too.
		client.Close()
		upstream.Close()
	}
	wg.Add(2)
	go pipe(upstream, client, &inN, "client")
	go pipe(client, upstream, &outN, "upstream")
	wg.Wait()
	return in + inN, outN, reason
}

// writeAll writes p, riding over deadline expiries caused by the shared
// idle deadline while the tunnel is still active (a slow reader on the other
// side is not idleness as long as bytes keep moving).
func writeAll(dst net.Conn, p []byte, idle time.Duration, last *atomic.Int64, arm func()) error {
	for len(p) > 0 {
		n, err := dst.Write(p)
		p = p[n:]
		if err == nil {
			continue
		}
		if isTimeout(err) && n > 0 {
			last.Store(time.Now().UnixNano())
		}
		if isTimeout(err) && time.Since(time.Unix(0, last.Load())) < idle {
			arm()
			continue
		}
		return err
	}
	return nil
}

// Tunnels tracks hijacked CONNECT tunnels: http.Server.Shutdown does not see
// them, so shutdown waits here and closes what is left after the grace time.
type Tunnels struct {
	mu      sync.Mutex
	open    map[*tunnel]struct{}
	closing bool
	wg      sync.WaitGroup
}

// tunnel is one tunnel's connections: the client's (a, nil until the
// CONNECT is hijacked) and the destination's (b).
// closed is set by close; all three are guarded by Tunnels.mu.
type tunnel struct {
	a, b   net.Conn
	closed bool
}

func (tu *tunnel) close() {
	tu.closed = true
	if tu.a != nil {
		tu.a.Close()
	}
	tu.b.Close()
}

// add tracks a tunnel from its dialled destination connection on.
func (t *Tunnels) add(b net.Conn) (tu *tunnel, done func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.open == nil {
		t.open = map[*tunnel]struct{}{}
	}
	tu = &tunnel{b: b}
	t.open[tu] = struct{}{}
	t.wg.Add(1)
	return tu, func() {
		t.mu.Lock()
		delete(t.open, tu)
		t.mu.Unlock()
		t.wg.Done()
	}
}

// attach adds the tunnel's client connection once it is hijacked; a
// tunnel closed meanwhile closes it at once.
func (t *Tunnels) attach(tu *tunnel, a net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tu.a = a
	if tu.closed {
		a.Close()
	}
}

// Closing reports whether Shutdown has begun; no new tunnels open then.
func (t *Tunnels) Closing() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closing
}

// Refuse makes every CONNECT from now on answer 503 shutting_down. The
// server calls it as the drain begins, before /readyz turns 503, so no
// tunnel opens once the drain is visible. (A request that net/http reads
// after its own Shutdown has begun is dropped unanswered, so the 503 is
// seen only by a CONNECT read in the instant between the two.)
func (t *Tunnels) Refuse() {
	t.mu.Lock()
	t.closing = true
	t.mu.Unlock()
}

// Shutdown refuses new tunnels, waits for open ones until ctx ends, then
// closes whatever is still open.
func (t *Tunnels) Shutdown(ctx context.Context) {
	t.Refuse()
	waited := make(chan struct{})
	go func() { t.wg.Wait(); close(waited) }()
	select {
	case <-waited:
		return
	case <-ctx.Done():
	}
	t.mu.Lock()
	for tu := range t.open {
		tu.close()
	}
	t.mu.Unlock()
	<-waited
}

// CloseAll closes every tunnel open now and says how many; new tunnels
// may still open. Instance mode ends its tunnels when its calls are found
// to leave from a wrong IP: the gate refuses new requests, but bytes of a
// tunnel opened before would go on leaving from that address.
func (t *Tunnels) CloseAll() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	for tu := range t.open {
		tu.close()
	}
	return len(t.open)
}

// Count reports the open tunnels.
func (t *Tunnels) Count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.open)
}
