package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	bbolterrors "go.etcd.io/bbolt/errors"

	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/health"
	"github.com/outgate/outgate/internal/idempotency"
	"github.com/outgate/outgate/internal/idempotency/bolt"
	"github.com/outgate/outgate/internal/idempotency/dynamo"
)

// idemSweepEvery is how often expired idempotency records are deleted.
const idemSweepEvery = time.Minute

// openIdempotency opens the store a config asks for, or returns nil when no
// upstream uses idempotency.
func openIdempotency(cfg *config.Config) (idempotency.Store, error) {
	if !cfg.UsesIdempotency() {
		return nil, nil
	}
	s := cfg.IdempotencyStore
	if s.DynamoDBTable != "" {
		return openDynamo(context.Background(), s.DynamoDBTable)
	}
	st, err := bolt.Open(s.Path, bolt.Options{MaxKeysPerClient: s.MaxKeys, MaxBytesPerClient: s.MaxBytes, SweepEvery: idemSweepEvery})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// idempotencyFor returns the store for a reloaded config: the open one, a
// newly opened one if the running config had none, or an error if the
// store's settings changed (that needs a restart: records in flight live in
// the open store).
func (g *gateway) idempotencyFor(cfg *config.Config) (idempotency.Store, error) {
	if !cfg.UsesIdempotency() {
		return g.idem, nil
	}
	if g.idem == nil {
		st, err := openIdempotency(cfg)
		if err != nil {
			return nil, err
		}
		g.idem, g.idemConf = st, cfg.IdempotencyStore
		return st, nil
	}
	n, o := cfg.IdempotencyStore, g.idemConf
	if n.Path != o.Path || n.DynamoDBTable != o.DynamoDBTable || n.MaxKeys != o.MaxKeys || n.MaxBytes != o.MaxBytes {
		return nil, fmt.Errorf("idempotency_store cannot change on reload; restart outgate for that")
	}
	return g.idem, nil
}

// AdminClearPath is the admin listener's endpoint behind `outgate
// idempotency clear` while the gateway runs (the bbolt file is locked by
// the running gateway, so the command cannot open it then).
const AdminClearPath = "/idempotency/clear"

// adminClearHeader must be on a clear request: a browser on the gateway
// host cannot add it to a cross-site form post (it would need a CORS
// preflight, which the admin listener never answers), so a web page cannot
// clear keys through the loopback address.
const adminClearHeader = "Outgate-Admin-Action"

// clearHandler clears one key. It answers only peers on loopback: clearing a
// key lets the next request with it go to the partner again, so it is an
// operator's act on the gateway host, never something any host that can
// reach admin_listen (a load balancer's health checks) may do.
func (g *gateway) clearHandler(w http.ResponseWriter, r *http.Request) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !ap.Addr().Unmap().IsLoopback() {
		http.Error(w, "clearing idempotency keys is allowed from the gateway host only", http.StatusForbidden)
		return
	}
	if !addressedByAddress(r.Host) {
		http.Error(w, "clearing idempotency keys needs the admin address itself (an IP address or localhost) in Host", http.StatusForbidden)
		return
	}
	if r.Header.Get(adminClearHeader) != "clear" {
		http.Error(w, "missing "+adminClearHeader+": clear", http.StatusBadRequest)
		return
	}
	st := g.core.Load().Idempotency
	if st == nil {
		http.Error(w, "no upstream uses idempotency", http.StatusNotFound)
		return
	}
	k := idempotency.Key{Client: r.FormValue("client"), Upstream: r.FormValue("upstream"), Key: r.FormValue("key")}
	if k.Client == "" || k.Upstream == "" || k.Key == "" {
		http.Error(w, "client, upstream and key are required", http.StatusBadRequest)
		return
	}
	ok, err := st.Clear(r.Context(), k)
	if errors.Is(err, idempotency.ErrInFlight) {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	if err != nil {
		g.log.Error("idempotency clear failed", "error", err.Error())
		http.Error(w, "the store failed", http.StatusInternalServerError)
		return
	}
	g.log.Info("idempotency key cleared by the operator", "client", k.Client, "upstream", k.Upstream, "existed", ok)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]bool{"cleared": ok})
}

// addressedByAddress reports whether a request's Host names the listener
// by address (or localhost), as the CLI does. A web page that rebound its
// own DNS name to 127.0.0.1 is same-origin with the admin listener in the
// browser, so it may add Outgate-Admin-Action without a preflight, and it
// connects from loopback; its Host is still its own name, never an address.
func addressedByAddress(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	return strings.EqualFold(host, "localhost")
}

// ClearKey is `outgate idempotency clear`: it deletes a key's record, so
// the next request with it is sent. With the gateway running (its admin
// listener configured) it asks the gateway; otherwise it opens the store.
func ClearKey(ctx context.Context, cfg *config.Config, k idempotency.Key) (bool, error) {
	if !cfg.UsesIdempotency() {
		return false, errors.New("no upstream in this config uses idempotency")
	}
	if t := cfg.IdempotencyStore.DynamoDBTable; t != "" {
		st, err := openDynamo(ctx, t)
		if err != nil {
			return false, err
		}
		return st.Clear(ctx, k)
	}
	if _, err := os.Stat(cfg.IdempotencyStore.Path); err != nil {
		return false, fmt.Errorf("no idempotency store: %w", err)
	}
	st, err := bolt.Open(cfg.IdempotencyStore.Path, bolt.Options{MaxKeysPerClient: cfg.IdempotencyStore.MaxKeys, LockTimeout: 500 * time.Millisecond})
	if err == nil {
		defer st.Close()
		return st.Clear(ctx, k)
	}
	if !errors.Is(err, bbolterrors.ErrTimeout) {
		return false, err
	}
	if cfg.AdminListen == "" {
		return false, fmt.Errorf("a running gateway holds %s; set admin_listen so this command can ask it, or stop the gateway", cfg.IdempotencyStore.Path)
	}
	addr, err := health.DialAddr(cfg.AdminListen)
	if err != nil {
		return false, fmt.Errorf("a running gateway holds %s; admin_listen: %w", cfg.IdempotencyStore.Path, err)
	}
	form := url.Values{"client": {k.Client}, "upstream": {k.Upstream}, "key": {k.Key}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+AdminClearPath, strings.NewReader(form.Encode()))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(adminClearHeader, "clear")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return false, fmt.Errorf("asking the gateway at %s: %w", cfg.AdminListen, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("the gateway at %s answered %d: %s", cfg.AdminListen, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	var out struct{ Cleared bool }
	if err := json.Unmarshal(body, &out); err != nil {
		return false, fmt.Errorf("the gateway's answer: %w", err)
	}
	return out.Cleared, nil
}

// openDynamo uses the AWS SDK's default credentials and region (the
// environment, the instance role).
func openDynamo(ctx context.Context, table string) (idempotency.Store, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("idempotency_store.dynamodb_table: AWS configuration: %w", err)
	}
	st := dynamo.New(dynamodb.NewFromConfig(cfg), table, nil)
	// Fail at start, not on the first payment: the table must exist and
	// the credentials must reach it (a read of a key no client can have).
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := st.Get(pctx, idempotency.Key{Key: "outgate-start-probe"}); err != nil {
		return nil, fmt.Errorf("idempotency_store.dynamodb_table %s: %w", table, err)
	}
	return st, nil
}
