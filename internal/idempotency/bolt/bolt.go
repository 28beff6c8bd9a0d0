// Package bolt is the embedded idempotency store of `outgate serve`: one
// bbolt file, mode 0600, locked by one process at a time. It is not
// encrypted: the file holds stored answers (partner responses) in the
// clear, so keep it on an encrypted volume and readable only by outgate.
package bolt

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/outgate/outgate/internal/idempotency"
)

var (
	bRecords = []byte("records") // key → JSON Record
	bExpiry  = []byte("expiry")  // expires (8 bytes, unix ns, big endian) + key → nothing
	bCounts  = []byte("counts")  // client → live records (8 bytes)
)

// Options tune a store.
type Options struct {
	// MaxKeysPerClient bounds one client's live records (so one client
	// cannot fill the file for everyone). Required.
	MaxKeysPerClient int
	// MaxBytesPerClient bounds the bytes of one client's stored answers
	// (0: no bound); an answer past it is kept as NotStored.
	MaxBytesPerClient int64
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// SweepEvery runs the expiry sweep in the background (0: never; the
	// sweep also runs when a client reaches its bound).
	SweepEvery time.Duration
	// LockTimeout bounds the wait for another process's lock on the file.
	LockTimeout time.Duration
}

// Store is a bbolt-backed idempotency.Store.
type Store struct {
	db   *bbolt.DB
	o    Options
	stop chan struct{}
	wg   sync.WaitGroup
}

// sweepBatch bounds the records one sweep deletes (one transaction).
const sweepBatch = 10_000

// Open opens (or creates) the store at path. Records a previous process
// left in flight (it was killed between sending and answering) become
// Unknown: bbolt's file lock means no live process still holds them.
func Open(path string, o Options) (*Store, error) {
	if o.MaxKeysPerClient < 1 {
		return nil, fmt.Errorf("idempotency store: max keys per client must be at least 1")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = 5 * time.Second
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: o.LockTimeout})
	if err != nil {
		return nil, fmt.Errorf("idempotency store %s: %w", path, err)
	}
	// An existing file keeps its mode on open: tighten it.
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("idempotency store %s: %w", path, err)
	}
	s := &Store{db: db, o: o, stop: make(chan struct{})}
	if err := db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bRecords, bExpiry, bCounts} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return orphansUnknown(tx)
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("idempotency store %s: %w", path, err)
	}
	if o.SweepEvery > 0 {
		s.wg.Add(1)
		go s.sweeper()
	}
	return s, nil
}

// orphansUnknown turns every stored in-flight record into Unknown.
func orphansUnknown(tx *bbolt.Tx) error {
	b := tx.Bucket(bRecords)
	type kv struct{ k, v []byte }
	var changed []kv
	err := b.ForEach(func(k, v []byte) error {
		var r idempotency.Record
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		if r.State != idempotency.InFlight {
			return nil
		}
		r.State = idempotency.Unknown
		nv, err := json.Marshal(&r)
		if err != nil {
			return err
		}
		changed = append(changed, kv{append([]byte(nil), k...), nv})
		return nil
	})
	if err != nil {
		return err
	}
	for _, c := range changed {
		if err := b.Put(c.k, c.v); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) sweeper() {
	defer s.wg.Done()
	t := time.NewTicker(s.o.SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.Sweep()
		}
	}
}

// Sweep deletes expired records (at most sweepBatch) and returns how many.
func (s *Store) Sweep() (n int, err error) {
	err = s.db.Update(func(tx *bbolt.Tx) error {
		n, err = sweep(tx, s.o.Now())
		return err
	})
	return n, err
}

func sweep(tx *bbolt.Tx, now time.Time) (int, error) {
	c := tx.Bucket(bExpiry).Cursor()
	var idx [][]byte
	for k, _ := c.First(); k != nil && len(idx) < sweepBatch; k, _ = c.Next() {
		if len(k) < 8 || int64(binary.BigEndian.Uint64(k[:8])) > now.UnixNano() {
			break
		}
		idx = append(idx, append([]byte(nil), k...))
	}
	for _, k := range idx {
		if err := remove(tx, k[8:]); err != nil {
			return 0, err
		}
	}
	return len(idx), nil
}

func encodeKey(k idempotency.Key) []byte {
	var b []byte
	for _, s := range []string{k.Client, k.Upstream, k.Key} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

func clientOf(key []byte) []byte {
	n, w := binary.Uvarint(key)
	if w <= 0 || uint64(len(key)-w) < n {
		return nil
	}
	return key[:w+int(n)]
}

func expiryKey(exp time.Time, key []byte) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(exp.UnixNano()))
	return append(b, key...)
}

func get(tx *bbolt.Tx, key []byte) (*idempotency.Record, error) {
	v := tx.Bucket(bRecords).Get(key)
	if v == nil {
		return nil, nil
	}
	var r idempotency.Record
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("idempotency store: corrupt record: %w", err)
	}
	return &r, nil
}

func put(tx *bbolt.Tx, key []byte, r *idempotency.Record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Bucket(bRecords).Put(key, v)
}

// remove deletes a record, its expiry entry and its share of the count.
func remove(tx *bbolt.Tx, key []byte) error {
	r, err := get(tx, key)
	if err != nil || r == nil {
		return err
	}
	if err := tx.Bucket(bRecords).Delete(key); err != nil {
		return err
	}
	if err := tx.Bucket(bExpiry).Delete(expiryKey(r.Expires, key)); err != nil {
		return err
	}
	return addUsage(tx, clientOf(key), -1, -answerBytes(r))
}

// usage is a client's live records and the bytes of their stored answers.
type usage struct{ n, bytes int64 }

func usageOf(tx *bbolt.Tx, client []byte) usage {
	v := tx.Bucket(bCounts).Get(client)
	var u usage
	if len(v) >= 8 {
		u.n = int64(binary.BigEndian.Uint64(v))
	}
	if len(v) >= 16 {
		u.bytes = int64(binary.BigEndian.Uint64(v[8:]))
	}
	return u
}

func count(tx *bbolt.Tx, client []byte) int64 { return usageOf(tx, client).n }

func addUsage(tx *bbolt.Tx, client []byte, dn, dbytes int64) error {
	u := usageOf(tx, client)
	u.n, u.bytes = max(0, u.n+dn), max(0, u.bytes+dbytes)
	if u.n == 0 {
		return tx.Bucket(bCounts).Delete(client)
	}
	v := binary.BigEndian.AppendUint64(nil, uint64(u.n))
	return tx.Bucket(bCounts).Put(client, binary.BigEndian.AppendUint64(v, uint64(u.bytes)))
}

func addCount(tx *bbolt.Tx, client []byte, d int64) error { return addUsage(tx, client, d, 0) }

// answerBytes is what a record's stored answer counts against its
// client's MaxBytesPerClient.
func answerBytes(r *idempotency.Record) int64 {
	if r.Answer == nil {
		return 0
	}
	n := int64(len(r.Answer.Body))
	for k, vs := range r.Answer.Header {
		n += int64(len(k))
		for _, v := range vs {
			n += int64(len(v))
		}
	}
	return n
}

// Claim implements idempotency.Store.
func (s *Store) Claim(_ context.Context, c idempotency.Claim) (token string, existing *idempotency.Record, err error) {
	key := encodeKey(c.Key)
	now := s.o.Now()
	err = s.db.Update(func(tx *bbolt.Tx) error {
		r, err := get(tx, key)
		if err != nil {
			return err
		}
		if r != nil && now.Before(r.Expires) {
			e := r.Effective(now)
			e.Token = ""
			existing = &e
			return nil
		}
		if r != nil {
			if err := remove(tx, key); err != nil {
				return err
			}
		}
		client := clientOf(key)
		if count(tx, client) >= int64(s.o.MaxKeysPerClient) {
			if _, err := sweep(tx, now); err != nil {
				return err
			}
			if count(tx, client) >= int64(s.o.MaxKeysPerClient) {
				return idempotency.ErrFull
			}
		}
		nr := &idempotency.Record{
			State:       idempotency.InFlight,
			Fingerprint: c.Fingerprint,
			Token:       idempotency.NewToken(),
			ClaimedAt:   now,
			LeaseEnd:    now.Add(c.Lease),
			Expires:     now.Add(c.TTL),
		}
		if err := put(tx, key, nr); err != nil {
			return err
		}
		if err := tx.Bucket(bExpiry).Put(expiryKey(nr.Expires, key), nil); err != nil {
			return err
		}
		token = nr.Token
		return addCount(tx, client, 1)
	})
	if err != nil {
		return "", nil, err
	}
	return token, existing, nil
}

// settle changes the caller's in-flight record, or fails with ErrNotOwner.
func (s *Store) settle(k idempotency.Key, token string, f func(tx *bbolt.Tx, key []byte, r *idempotency.Record) error) error {
	key := encodeKey(k)
	now := s.o.Now()
	return s.db.Update(func(tx *bbolt.Tx) error {
		r, err := get(tx, key)
		if err != nil {
			return err
		}
		if r == nil || r.Token != token || token == "" || r.State != idempotency.InFlight || !now.Before(r.Expires) {
			return idempotency.ErrNotOwner
		}
		return f(tx, key, r)
	})
}

// Complete implements idempotency.Store.
func (s *Store) Complete(_ context.Context, k idempotency.Key, token string, a idempotency.Answer) error {
	return s.settle(k, token, func(tx *bbolt.Tx, key []byte, r *idempotency.Record) error {
		r.State, r.Answer = idempotency.Completed, &a
		n := answerBytes(r)
		over := func() bool {
			return s.o.MaxBytesPerClient > 0 && usageOf(tx, clientOf(key)).bytes+n > s.o.MaxBytesPerClient
		}
		if over() {
			// Expired answers may still hold the room: sweep, then look again.
			if _, err := sweep(tx, s.o.Now()); err != nil {
				return err
			}
		}
		if over() {
			// The client's answers fill its share: keep the status only,
			// as for an answer over max_stored_body (never sent again).
			r.State, r.Answer, n = idempotency.NotStored, &idempotency.Answer{Status: a.Status}, 0
		}
		if err := put(tx, key, r); err != nil {
			return err
		}
		return addUsage(tx, clientOf(key), 0, n)
	})
}

// NotStored implements idempotency.Store.
func (s *Store) NotStored(_ context.Context, k idempotency.Key, token string, status int) error {
	return s.settle(k, token, func(tx *bbolt.Tx, key []byte, r *idempotency.Record) error {
		r.State, r.Answer = idempotency.NotStored, &idempotency.Answer{Status: status}
		return put(tx, key, r)
	})
}

// MarkUnknown implements idempotency.Store.
func (s *Store) MarkUnknown(_ context.Context, k idempotency.Key, token string) error {
	return s.settle(k, token, func(tx *bbolt.Tx, key []byte, r *idempotency.Record) error {
		r.State = idempotency.Unknown
		return put(tx, key, r)
	})
}

// Release implements idempotency.Store.
func (s *Store) Release(_ context.Context, k idempotency.Key, token string) error {
	return s.settle(k, token, func(tx *bbolt.Tx, key []byte, _ *idempotency.Record) error {
		return remove(tx, key)
	})
}

// Get implements idempotency.Store.
func (s *Store) Get(_ context.Context, k idempotency.Key) (*idempotency.Record, error) {
	var out *idempotency.Record
	now := s.o.Now()
	err := s.db.View(func(tx *bbolt.Tx) error {
		r, err := get(tx, encodeKey(k))
		if err != nil || r == nil || !now.Before(r.Expires) {
			return err
		}
		e := r.Effective(now)
		e.Token = ""
		out = &e
		return nil
	})
	return out, err
}

// Clear implements idempotency.Store.
func (s *Store) Clear(_ context.Context, k idempotency.Key) (bool, error) {
	key := encodeKey(k)
	now := s.o.Now()
	var live bool
	err := s.db.Update(func(tx *bbolt.Tx) error {
		r, err := get(tx, key)
		if err != nil || r == nil {
			return err
		}
		live = now.Before(r.Expires)
		if live && r.Effective(now).State == idempotency.InFlight {
			return idempotency.ErrInFlight
		}
		return remove(tx, key)
	})
	if err != nil {
		return false, err
	}
	return live, nil
}

// Close stops the sweeper and closes the file.
func (s *Store) Close() error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.wg.Wait()
	return s.db.Close()
}
