// Package storetest is the contract every idempotency.Store must pass: run
// it from the store's own tests with a constructor.
package storetest

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/idempotency"
)

// Clock is a settable clock for stores that take a Now func.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts at a fixed time.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Advance moves the clock on.
func (c *Clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// Open makes a fresh, empty store on clk, bounding each client's live keys
// to maxKeys where the store supports it.
type Open func(t *testing.T, clk *Clock, maxKeys int) idempotency.Store

// Caps says which optional guarantees the store gives.
type Caps struct {
	// PerClientBound: Claim fails with ErrFull at maxKeys live keys.
	PerClientBound bool
}

const (
	ttl   = 24 * time.Hour
	lease = 5 * time.Minute
)

var ctx = context.Background()

func fp(s string) idempotency.Fingerprint {
	return idempotency.NewFingerprint("POST", "/pay", "", []byte(s))
}

func claim(t *testing.T, s idempotency.Store, k idempotency.Key, f idempotency.Fingerprint) (string, *idempotency.Record) {
	t.Helper()
	tok, rec, err := s.Claim(ctx, idempotency.Claim{Key: k, Fingerprint: f, TTL: ttl, Lease: lease})
	if err != nil {
		t.Fatalf("Claim(%v): %v", k, err)
	}
	if (tok == "") == (rec == nil) {
		t.Fatalf("Claim(%v) = token %q, record %v: want exactly one", k, tok, rec)
	}
	return tok, rec
}

func mustFree(t *testing.T, s idempotency.Store, k idempotency.Key) string {
	t.Helper()
	tok, rec := claim(t, s, k, fp("a"))
	if rec != nil {
		t.Fatalf("key %v should be free, found %v", k, rec.State)
	}
	return tok
}

func mustState(t *testing.T, s idempotency.Store, k idempotency.Key, want idempotency.State) *idempotency.Record {
	t.Helper()
	g, err := s.Get(ctx, k)
	if err != nil || g == nil || g.State != want {
		t.Fatalf("Get(%v) = %+v, %v; want state %v", k, g, err, want)
	}
	_, rec := claim(t, s, k, fp("a"))
	if rec == nil || rec.State != want {
		t.Fatalf("a duplicate claim of %v claimed or saw %+v; want state %v", k, rec, want)
	}
	if rec.Token != "" {
		t.Fatalf("a duplicate claim learned the owner's token")
	}
	return rec
}

// Run runs the contract.
func Run(t *testing.T, open Open, caps Caps) {
	k := idempotency.Key{Client: "shop", Upstream: "bank", Key: "k1"}

	t.Run("DuplicateWhileInFlight", func(t *testing.T) {
		s := open(t, NewClock(), 100)
		mustFree(t, s, k)
		rec := mustState(t, s, k, idempotency.InFlight)
		if rec.Fingerprint != fp("a") {
			t.Fatal("the record lost its fingerprint")
		}
	})

	t.Run("CompletedAnswerIsKept", func(t *testing.T) {
		s := open(t, NewClock(), 100)
		tok := mustFree(t, s, k)
		a := idempotency.Answer{Status: 201, Header: http.Header{"Content-Type": {"application/json"}, "X-Ref": {"1", "2"}}, Body: []byte(`{"id":"tr_1"}`)}
		if err := s.Complete(ctx, k, tok, a); err != nil {
			t.Fatal(err)
		}
		rec := mustState(t, s, k, idempotency.Completed)
		if rec.Answer == nil || rec.Answer.Status != 201 || string(rec.Answer.Body) != `{"id":"tr_1"}` ||
			rec.Answer.Header.Get("Content-Type") != "application/json" || len(rec.Answer.Header["X-Ref"]) != 2 {
			t.Fatalf("stored answer = %+v", rec.Answer)
		}
		if err := s.Complete(ctx, k, tok, a); !errors.Is(err, idempotency.ErrNotOwner) {
			t.Fatalf("a second Complete = %v, want ErrNotOwner", err)
		}
		if err := s.MarkUnknown(ctx, k, tok); !errors.Is(err, idempotency.ErrNotOwner) {
			t.Fatalf("MarkUnknown after Complete = %v, want ErrNotOwner", err)
		}
	})

	t.Run("OtherFingerprintSeesTheRecord", func(t *testing.T) {
		s := open(t, NewClock(), 100)
		mustFree(t, s, k)
		_, rec := claim(t, s, k, fp("b"))
		if rec == nil || rec.Fingerprint != fp("a") {
			t.Fatalf("a claim with another body got %+v; want the first request's record", rec)
		}
	})

	t.Run("UnknownStaysUnknown", func(t *testing.T) {
		clk := NewClock()
		s := open(t, clk, 100)
		tok := mustFree(t, s, k)
		if err := s.MarkUnknown(ctx, k, tok); err != nil {
			t.Fatal(err)
		}
		mustState(t, s, k, idempotency.Unknown)
		clk.Advance(ttl - time.Second)
		mustState(t, s, k, idempotency.Unknown)
	})

	t.Run("NotStoredKeepsStatus", func(t *testing.T) {
		s := open(t, NewClock(), 100)
		tok := mustFree(t, s, k)
		if err := s.NotStored(ctx, k, tok, 200); err != nil {
			t.Fatal(err)
		}
		rec := mustState(t, s, k, idempotency.NotStored)
		if rec.Answer == nil || rec.Answer.Status != 200 || len(rec.Answer.Body) != 0 {
			t.Fatalf("answer = %+v, want status only", rec.Answer)
		}
	})

	t.Run("LeaseEndTurnsInFlightUnknownNeverFree", func(t *testing.T) {
		clk := NewClock()
		s := open(t, clk, 100)
		tok := mustFree(t, s, k)
		clk.Advance(lease)
		mustState(t, s, k, idempotency.Unknown)
		// The owner may still settle it: nothing was sent twice.
		if err := s.Complete(ctx, k, tok, idempotency.Answer{Status: 200}); err != nil {
			t.Fatalf("the owner's late Complete: %v", err)
		}
		mustState(t, s, k, idempotency.Completed)
	})

	t.Run("TTLFreesTheKey", func(t *testing.T) {
		clk := NewClock()
		s := open(t, clk, 100)
		tok := mustFree(t, s, k)
		if err := s.MarkUnknown(ctx, k, tok); err != nil {
			t.Fatal(err)
		}
		clk.Advance(ttl)
		if g, err := s.Get(ctx, k); err != nil || g != nil {
			t.Fatalf("Get after ttl = %+v, %v; want none", g, err)
		}
		tok2 := mustFree(t, s, k)
		if tok2 == tok {
			t.Fatal("a new claim reused the old token")
		}
	})

	t.Run("ExpiredClaimCannotSettle", func(t *testing.T) {
		clk := NewClock()
		s := open(t, clk, 100)
		old := mustFree(t, s, k)
		clk.Advance(ttl)
		mustFree(t, s, k)
		if err := s.Complete(ctx, k, old, idempotency.Answer{Status: 200}); !errors.Is(err, idempotency.ErrNotOwner) {
			t.Fatalf("the expired claim's Complete = %v, want ErrNotOwner", err)
		}
		mustState(t, s, k, idempotency.InFlight)
	})

	t.Run("ReleaseFrees", func(t *testing.T) {
		s := open(t, NewClock(), 100)
		tok := mustFree(t, s, k)
		if err := s.Release(ctx, k, "not-the-token"); !errors.Is(err, idempotency.ErrNotOwner) {
			t.Fatalf("Release with a wrong token = %v", err)
		}
		if err := s.Release(ctx, k, tok); err != nil {
			t.Fatal(err)
		}
		mustFree(t, s, k)
	})

	t.Run("ClearIsTheOperatorsWayOut", func(t *testing.T) {
		s := open(t, NewClock(), 100)
		tok := mustFree(t, s, k)
		if err := s.MarkUnknown(ctx, k, tok); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Clear(ctx, k); err != nil || !ok {
			t.Fatalf("Clear = %v, %v", ok, err)
		}
		if ok, err := s.Clear(ctx, k); err != nil || ok {
			t.Fatalf("second Clear = %v, %v; want false", ok, err)
		}
		mustFree(t, s, k)
	})

	t.Run("ClearRefusesARequestInFlight", func(t *testing.T) {
		// The operator clears a key after reconciling an unknown outcome;
		// clearing one whose request is on its way (a running gateway)
		// would let a retry go out beside it.
		clk := NewClock()
		s := open(t, clk, 100)
		tok := mustFree(t, s, k)
		if ok, err := s.Clear(ctx, k); !errors.Is(err, idempotency.ErrInFlight) || ok {
			t.Fatalf("Clear of a key in flight = %v, %v; want ErrInFlight", ok, err)
		}
		mustState(t, s, k, idempotency.InFlight)
		clk.Advance(lease) // the lease ended: unknown, clearable
		if ok, err := s.Clear(ctx, k); err != nil || !ok {
			t.Fatalf("Clear past the lease = %v, %v", ok, err)
		}
		if err := s.MarkUnknown(ctx, k, tok); !errors.Is(err, idempotency.ErrNotOwner) {
			t.Fatalf("the cleared claim's MarkUnknown = %v, want ErrNotOwner", err)
		}
		mustFree(t, s, k)
	})

	t.Run("TenantsNeverShareARecord", func(t *testing.T) {
		clk := NewClock()
		s := open(t, clk, 100)
		keys := []idempotency.Key{
			{Client: "ab", Upstream: "c", Key: "k"},
			{Client: "a", Upstream: "bc", Key: "k"},
			{Client: "a", Upstream: "b", Key: "ck"},
			{Client: "other", Upstream: "c", Key: "k"},
			{Client: "ab", Upstream: "other", Key: "k"},
		}
		for _, kk := range keys {
			mustFree(t, s, kk)
		}
		clk.Advance(lease) // in flight past the lease: clearable
		if ok, err := s.Clear(ctx, keys[0]); err != nil || !ok {
			t.Fatal(ok, err)
		}
		for _, kk := range keys[1:] {
			mustState(t, s, kk, idempotency.Unknown) // kept, past their lease
		}
	})

	t.Run("ConcurrentClaimsOneWinner", func(t *testing.T) {
		s := open(t, NewClock(), 100)
		const n = 16
		var wg sync.WaitGroup
		toks := make(chan string, n)
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tok, _, err := s.Claim(ctx, idempotency.Claim{Key: k, Fingerprint: fp("a"), TTL: ttl, Lease: lease})
				if err != nil {
					t.Error(err)
				}
				toks <- tok
			}()
		}
		wg.Wait()
		close(toks)
		won := 0
		for tok := range toks {
			if tok != "" {
				won++
			}
		}
		if won != 1 {
			t.Fatalf("%d of %d concurrent claims won, want 1", won, n)
		}
	})

	if !caps.PerClientBound {
		return
	}
	t.Run("PerClientBound", func(t *testing.T) {
		clk := NewClock()
		s := open(t, clk, 3)
		for i := range 3 {
			mustFree(t, s, idempotency.Key{Client: "shop", Upstream: "bank", Key: string(rune('a' + i))})
		}
		_, _, err := s.Claim(ctx, idempotency.Claim{Key: idempotency.Key{Client: "shop", Upstream: "bank", Key: "z"}, Fingerprint: fp("a"), TTL: ttl, Lease: lease})
		if !errors.Is(err, idempotency.ErrFull) {
			t.Fatalf("claim past the bound = %v, want ErrFull", err)
		}
		// Another client is not affected by this one's keys.
		mustFree(t, s, idempotency.Key{Client: "other", Upstream: "bank", Key: "z"})
		// Released and expired keys give room back.
		tok := mustFree(t, s, idempotency.Key{Client: "other", Upstream: "bank", Key: "y"})
		if err := s.Release(ctx, idempotency.Key{Client: "other", Upstream: "bank", Key: "y"}, tok); err != nil {
			t.Fatal(err)
		}
		clk.Advance(ttl)
		mustFree(t, s, idempotency.Key{Client: "shop", Upstream: "bank", Key: "z"})
	})
}
