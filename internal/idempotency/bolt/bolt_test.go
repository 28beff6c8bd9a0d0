package bolt

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/idempotency"
	"github.com/outgate/outgate/internal/idempotency/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clk *storetest.Clock, maxKeys int) idempotency.Store {
		s, err := Open(filepath.Join(t.TempDir(), "idem.db"), Options{MaxKeysPerClient: maxKeys, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}, storetest.Caps{PerClientBound: true})
}

// A gateway killed between sending and answering leaves in-flight records;
// the next process must find them Unknown, never free, even before the lease
// ends.
func TestReopenTurnsInFlightUnknown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idem.db")
	clk := storetest.NewClock()
	s, err := Open(path, Options{MaxKeysPerClient: 10, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	k := idempotency.Key{Client: "shop", Upstream: "bank", Key: "k"}
	done := idempotency.Key{Client: "shop", Upstream: "bank", Key: "done"}
	fp := idempotency.NewFingerprint("POST", "/", "", nil)
	ctx := context.Background()
	for _, kk := range []idempotency.Key{k, done} {
		if _, _, err := s.Claim(ctx, idempotency.Claim{Key: kk, Fingerprint: fp, TTL: time.Hour, Lease: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	tok, _, _ := s.Claim(ctx, idempotency.Claim{Key: idempotency.Key{Client: "x", Upstream: "y", Key: "z"}, Fingerprint: fp, TTL: time.Hour, Lease: time.Hour})
	if err := s.Complete(ctx, idempotency.Key{Client: "x", Upstream: "y", Key: "z"}, tok, idempotency.Answer{Status: 200}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(path, Options{MaxKeysPerClient: 10, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, kk := range []idempotency.Key{k, done} {
		if r, err := s.Get(ctx, kk); err != nil || r == nil || r.State != idempotency.Unknown {
			t.Fatalf("after reopen %v = %+v, %v; want unknown", kk, r, err)
		}
	}
	if r, _ := s.Get(ctx, idempotency.Key{Client: "x", Upstream: "y", Key: "z"}); r == nil || r.State != idempotency.Completed {
		t.Fatalf("a completed record changed on reopen: %+v", r)
	}
}

func TestFileMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idem.db")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{MaxKeysPerClient: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600: the file holds partners' answers", fi.Mode().Perm())
	}
}

// Two gateways on one file would each think the other's in-flight records
// orphaned; the second must fail to open.
func TestOneProcessPerFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idem.db")
	s, err := Open(path, Options{MaxKeysPerClient: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s2, err := Open(path, Options{MaxKeysPerClient: 1, LockTimeout: 50 * time.Millisecond}); err == nil {
		s2.Close()
		t.Fatal("a second Open of a locked file succeeded")
	}
}

// A client's stored answers are bounded in bytes too: past the bound an
// answer is kept as NotStored (the duplicate is refused, never re-sent),
// other clients are not affected, and expiry gives the room back.
func TestBytesPerClient(t *testing.T) {
	clk := storetest.NewClock()
	s, err := Open(filepath.Join(t.TempDir(), "idem.db"), Options{MaxKeysPerClient: 100, MaxBytesPerClient: 1000, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	complete := func(client, key string, n int) idempotency.State {
		t.Helper()
		k := idempotency.Key{Client: client, Upstream: "bank", Key: key}
		tok, _, err := s.Claim(ctx, idempotency.Claim{Key: k, TTL: time.Hour, Lease: time.Minute})
		if err != nil || tok == "" {
			t.Fatalf("claim %v: %q %v", k, tok, err)
		}
		if err := s.Complete(ctx, k, tok, idempotency.Answer{Status: 200, Body: make([]byte, n)}); err != nil {
			t.Fatal(err)
		}
		r, _ := s.Get(ctx, k)
		return r.State
	}
	if st := complete("shop", "a", 600); st != idempotency.Completed {
		t.Fatalf("first answer: %v", st)
	}
	if st := complete("shop", "b", 600); st != idempotency.NotStored {
		t.Fatalf("answer past the bound: %v, want not_stored", st)
	}
	if st := complete("other", "a", 600); st != idempotency.Completed {
		t.Fatalf("another client's answer: %v", st)
	}
	clk.Advance(time.Hour)
	if st := complete("shop", "c", 600); st != idempotency.Completed {
		t.Fatalf("after expiry: %v", st)
	}
}
