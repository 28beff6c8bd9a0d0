package core

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/apierr"
	"github.com/outgate/outgate/internal/audit"
	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/idempotency"
	"github.com/outgate/outgate/internal/idempotency/bolt"
	"github.com/outgate/outgate/internal/keys"
)

// A partner that drips its answer (a byte per moment, never idle long
// enough for upstream_idle_timeout) would keep a keyed exchange in flight
// past its record's ttl: the record expires, and the client's retry would
// be sent beside the first. The exchange ends with the claim's lease
// instead: the answer is cut off and the key is unknown, never free, and
// the partner saw the key once.
func TestIdempotentExchangeEndsWithItsLease(t *testing.T) {
	old := idempotencyLeaseExtra
	idempotencyLeaseExtra = 0 // the lease is the upstream's 300ms timeout
	t.Cleanup(func() { idempotencyLeaseExtra = old })

	var seen atomic.Int32
	stop := make(chan struct{})
	partner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		io.ReadAll(r.Body)
		w.WriteHeader(http.StatusCreated)
		rc := http.NewResponseController(w)
		for {
			select {
			case <-r.Context().Done():
				return
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if _, err := io.WriteString(w, "."); err != nil {
				return
			}
			rc.Flush()
		}
	}))
	t.Cleanup(partner.Close)

	key, hash := keys.New()
	cfg, err := config.Parse([]byte(`
upstreams:
  pay: {url: "`+partner.URL+`", timeout: 300ms, idempotency: {}}
clients:
  - {name: shop, key_sha256: `+hash+`, upstreams: [pay]}
network:
  allow_cidrs: [127.0.0.0/8]
`), filepath.Join(t.TempDir(), "outgate.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := bolt.Open(filepath.Join(t.TempDir(), "idem.db"), bolt.Options{MaxKeysPerClient: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := New(cfg, Deps{Idempotency: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	up := cfg.Upstreams["pay"]
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &audit.Record{RequestID: audit.NewRequestID()}
		e := c.SendOnce(w, r, c.ByKey(key), Idempotent{Upstream: "pay", Policy: up.Idempotency.Policy}, r.URL.EscapedPath(),
			up.HeaderTimeout, partner.URL+r.URL.EscapedPath(), up.Parsed.Host, nil, nil, rec)
		if e != nil {
			apierr.Write(w, rec.RequestID, e)
		}
	}))
	t.Cleanup(gw.Close)
	t.Cleanup(func() { close(stop) }) // first: the servers wait for the drip to end

	send := func() (*http.Response, error) {
		req, _ := http.NewRequest("POST", gw.URL+"/transfers", strings.NewReader("100"))
		req.Header.Set("Idempotency-Key", "drip-1")
		return http.DefaultClient.Do(req)
	}
	resp, err := send()
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		read <- err
	}()
	select {
	case err := <-read:
		if err == nil {
			t.Errorf("the answer ended cleanly; want it cut off at the lease")
		}
	case <-time.After(20 * time.Second): // a failure bound, not a measure
		t.Fatal("the dripped answer was never cut off: the exchange can outlive its key's ttl")
	}
	r, err := st.Get(context.Background(), idempotency.Key{Client: "shop", Upstream: "pay", Key: "drip-1"})
	if err != nil || r == nil || r.State != idempotency.Unknown {
		t.Fatalf("record after the cut: %+v, %v; want unknown", r, err)
	}
	resp, err = send()
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict || resp.Header.Get("Outgate-Error") != "outcome_unknown" {
		t.Errorf("retry: %d %s; want 409 outcome_unknown", resp.StatusCode, resp.Header.Get("Outgate-Error"))
	}
	if n := seen.Load(); n != 1 {
		t.Fatalf("the partner saw the key %d times", n)
	}
}
