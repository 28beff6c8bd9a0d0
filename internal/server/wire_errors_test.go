package server_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestRequestBodyThatNeverArrives: a relay request whose body stops
// arriving gets 408 request_timeout once limits.read_timeout is over. The
// partner (an https one, first request: streamed) may have the start of
// it, but never a complete request: the upstream request is broken off.
func TestRequestBodyThatNeverArrives(t *testing.T) {
	got := make(chan error, 1)
	p := newPartner(t, func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		got <- err
	})
	c := newClient("billing")
	g := start(t, relayConfig(p, c, "", "limits: {read_timeout: 1s}\n"))
	conn, err := net.Dial("tcp", g.Relay)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second)) // a bound, not a wait
	fmt.Fprintf(conn, "POST /partner/pay HTTP/1.1\r\nHost: x\r\nOutgate-Key: %s\r\nContent-Length: 100\r\n\r\n{\"amount\":", c.key)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	wantError(t, resp, string(body), http.StatusRequestTimeout, "request_timeout")
	select {
	case err := <-got:
		if err == nil {
			t.Error("the partner read a complete request whose body never arrived")
		}
	default: // nothing reached it at all
	}
}
