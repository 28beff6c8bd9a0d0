package secrets

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultTTL is how long fetched values are used before they are fetched
// again (secrets.ttl): a rotated partner key reaches every gateway within
// it, at one call per reference per gateway per ttl.
const DefaultTTL = 5 * time.Minute

// fetchTimeout bounds one round of fetches: a source that does not answer
// must not hold a start, a reload or a refresh for ever. It is short enough
// that the Lambda relay's cold start (10 s in all, up to 5 s of it reading
// the config) ends with an error naming the secret rather than being cut off.
const fetchTimeout = 4 * time.Second

// retryAfterFailure spaces refreshes while a source is failing.
const retryAfterFailure = 30 * time.Second

// Set holds the current values of a config's references. Values are
// fetched all together, at Load and again once they are older than the
// ttl; a refresh that fails keeps the values it had (and logs which
// reference failed), so a source's outage never fails a request.
type Set struct {
	refs  []Ref
	src   Sources
	ttl   time.Duration
	log   *slog.Logger
	check func(Values) error
	now   func() time.Time
	onRef func(error)

	cur        atomic.Pointer[Snapshot]
	refreshing atomic.Bool
	retryAt    atomic.Int64 // unix nanoseconds: no refresh before, after one failed
	wg         sync.WaitGroup
}

// Snapshot is one consistent set of values; a new one replaces it whole.
type Snapshot struct {
	Values  Values
	Fetched time.Time
}

// Options configure a Set.
type Options struct {
	TTL time.Duration // DefaultTTL if 0
	Log *slog.Logger
	// Check validates fetched values as a whole (a certificate that matches
	// its key): values that fail it are refused like a failed fetch.
	Check func(Values) error
	// Now is the clock (time.Now if nil), for tests of the ttl.
	Now func() time.Time
	// OnRefresh, if set, sees the outcome of every refresh after Load (nil:
	// the new values are in use), for a metric: a refresh that keeps
	// failing means a rotated secret is not picked up.
	OnRefresh func(error)
}

// Load fetches every reference (duplicates once). It fails, listing every
// reference that failed, if any does.
func Load(ctx context.Context, src Sources, refs []Ref, o Options) (*Set, error) {
	s := &Set{src: src, ttl: o.TTL, log: o.Log, check: o.Check, now: o.Now, onRef: o.OnRefresh}
	if s.ttl <= 0 {
		s.ttl = DefaultTTL
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	seen := map[Ref]bool{}
	for _, r := range refs {
		if !seen[r] {
			seen[r] = true
			s.refs = append(s.refs, r)
		}
	}
	snap, err := s.fetch(ctx)
	if err != nil {
		return nil, err
	}
	s.cur.Store(snap)
	return s, nil
}

// Check fetches every reference once, for config check, and returns the
// errors: each a *Error.
func Check(ctx context.Context, src Sources, refs []Ref) []error {
	var errs []error
	seen := map[Ref]bool{}
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	for _, r := range refs {
		if seen[r] {
			continue
		}
		seen[r] = true
		if _, err := src.Fetch(ctx, r); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func (s *Set) fetch(ctx context.Context) (*Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	v := make(Values, len(s.refs))
	var errs []error
	for _, r := range s.refs {
		val, err := s.src.Fetch(ctx, r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		v[r] = val
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if s.check != nil {
		if err := s.check(v); err != nil {
			return nil, err
		}
	}
	return &Snapshot{Values: v, Fetched: s.now()}, nil
}

// Current returns the values to use now. When they are older than the ttl
// it starts one refresh in the background and returns them meanwhile: a
// request never waits on a secret source.
func (s *Set) Current() *Snapshot {
	if s == nil {
		return nil
	}
	snap := s.cur.Load()
	now := s.now()
	if now.Sub(snap.Fetched) >= s.ttl && now.UnixNano() >= s.retryAt.Load() && s.refreshing.CompareAndSwap(false, true) {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.refreshing.Store(false)
			s.Refresh(context.Background())
		}()
	}
	return snap
}

// Refresh fetches every reference again now. On failure the old values stay,
// the error is logged and returned, and Current tries again after
// retryAfterFailure (or the ttl, if shorter), not on every request.
func (s *Set) Refresh(ctx context.Context) error {
	snap, err := s.fetch(ctx)
	if s.onRef != nil {
		s.onRef(err)
	}
	if err != nil {
		s.retryAt.Store(s.now().Add(min(s.ttl, retryAfterFailure)).UnixNano())
		s.log.Warn("secret refresh failed; the previous values stay in use", "error", err.Error())
		return err
	}
	s.cur.Store(snap)
	return nil
}

// Wait waits for a background refresh to end (Core.Close, tests).
func (s *Set) Wait() {
	if s != nil {
		s.wg.Wait()
	}
}
