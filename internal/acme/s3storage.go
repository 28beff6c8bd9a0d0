package acme

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/caddyserver/certmagic"
)

// DefaultLockLease is how long a lock lives unless its holder renews it.
// The holder renews it every third of that while it holds it, so only a
// holder that died (an instance terminated mid-order) leaves a lock that
// others must wait out; two minutes is a short wait for a certificate.
const DefaultLockLease = 2 * time.Minute

// maxListPages bounds a listing (1,000 keys a page): the certificate
// storage of one deployment holds a few dozen objects.
const maxListPages = 100

// Storage is certmagic's Storage in S3, under a prefix of a bucket, shared
// by every instance of a deployment: a certificate one instance obtained is
// used by all (no new order, no rate limit hit), and the token of a
// challenge one instance started is there for whichever instance the CA
// reaches (certmagic's distributed solving).
//
// Locking (certmagic takes a lock around each order and renewal) is one
// object per lock, NAME.lock under locks/, holding its owner and the end of
// its lease:
//   - taken with PutObject If-None-Match: * (S3's conditional write: of
//     two writers one gets 412 Precondition Failed, or 409 when they race
//     on the same key at once),
//   - renewed by its holder every third of the lease with PutObject
//     If-Match: the ETag it last wrote, so a lease is never extended by
//     anyone who does not hold it,
//   - taken over once its lease has ended with PutObject If-Match: the
//     ETag of the stale lock, so of several waiters exactly one wins,
//   - released with DeleteObject If-Match: its own ETag, so a holder
//     whose lease ended and whose lock was taken over deletes nothing.
//
// What it does not give: fencing. A holder paused past its lease (a frozen
// instance) may still act after another took the lock over; certmagic
// tolerates that (a lock only saves a duplicate order: an order is
// idempotent, and the last certificate stored wins, both valid). Store,
// Load and Delete take no lock: S3 writes of one object are atomic.
type Storage struct {
	API    S3
	Bucket string
	Prefix string // "DEPLOYMENT/certs/"; ends with "/"
	// LockLease is DefaultLockLease when zero.
	LockLease time.Duration
	// Now is time.Now when nil (tests move it).
	Now func() time.Time

	id   string // this process's name in the locks it takes
	mu   sync.Mutex
	held map[string]*heldLock
}

type heldLock struct {
	etag string
	stop chan struct{}
	done chan struct{}
}

// lockBody is a lock object's content.
type lockBody struct {
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
}

// NewStorage is the storage under prefix of bucket.
func NewStorage(api S3, bucket, prefix string) *Storage {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	b := make([]byte, 8)
	rand.Read(b)
	return &Storage{API: api, Bucket: bucket, Prefix: prefix, id: hex.EncodeToString(b), held: map[string]*heldLock{}}
}

var _ certmagic.Storage = (*Storage)(nil)
var _ certmagic.TryLocker = (*Storage)(nil)
var _ certmagic.LockLeaseRenewer = (*Storage)(nil)

func (s *Storage) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Storage) lease() time.Duration {
	if s.LockLease > 0 {
		return s.LockLease
	}
	return DefaultLockLease
}

func (s *Storage) objectKey(key string) string { return s.Prefix + strings.Trim(key, "/") }

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func notFound(err error) bool {
	switch apiCode(err) {
	case "NoSuchKey", "NotFound":
		return true
	}
	return false
}

// lost reports a conditional write that another writer won.
func lost(err error) bool {
	switch apiCode(err) {
	case "PreconditionFailed", "ConditionalRequestConflict":
		return true
	}
	return false
}

// Store puts value at key.
func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	_, err := s.API.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(s.objectKey(key)), Body: bytes.NewReader(value)})
	if err != nil {
		return fmt.Errorf("storing %s in s3://%s/%s: %w", key, s.Bucket, s.Prefix, err)
	}
	return nil
}

// Load reads key; fs.ErrNotExist if there is none.
func (s *Storage) Load(ctx context.Context, key string) ([]byte, error) {
	b, _, err := s.get(ctx, s.objectKey(key))
	if notFound(err) {
		return nil, fs.ErrNotExist
	}
	return b, err
}

// get reads an object whole (bounded: certificates and keys are small).
func (s *Storage) get(ctx context.Context, objKey string) ([]byte, string, error) {
	out, err := s.API.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(objKey)})
	if err != nil {
		return nil, "", err
	}
	defer out.Body.Close()
	const maxObject = 1 << 20
	b, err := io.ReadAll(io.LimitReader(out.Body, maxObject+1))
	if err != nil {
		return nil, "", err
	}
	if len(b) > maxObject {
		return nil, "", fmt.Errorf("s3://%s/%s is larger than 1 MiB: not a certificate storage object", s.Bucket, objKey)
	}
	return b, aws.ToString(out.ETag), nil
}

// Delete deletes key and, if it is a directory, every key below it.
func (s *Storage) Delete(ctx context.Context, key string) error {
	if _, err := s.API.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(s.objectKey(key))}); err != nil && !notFound(err) {
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	below, err := s.List(ctx, key, true)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, k := range below {
		if _, err := s.API.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(s.objectKey(k))}); err != nil && !notFound(err) {
			return fmt.Errorf("deleting %s: %w", k, err)
		}
	}
	return nil
}

// Exists reports whether key is a file or a directory.
func (s *Storage) Exists(ctx context.Context, key string) bool {
	_, err := s.Stat(ctx, key)
	return err == nil
}

// Stat describes key: a file (an object) or a directory (a prefix of
// objects).
func (s *Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	out, err := s.API.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(s.objectKey(key))})
	if err == nil {
		return certmagic.KeyInfo{Key: key, Modified: aws.ToTime(out.LastModified), Size: aws.ToInt64(out.ContentLength), IsTerminal: true}, nil
	}
	if !notFound(err) {
		return certmagic.KeyInfo{}, err
	}
	l, err := s.API.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(s.Bucket), Prefix: aws.String(s.objectKey(key) + "/"), MaxKeys: aws.Int32(1)})
	if err != nil {
		return certmagic.KeyInfo{}, err
	}
	if len(l.Contents) == 0 {
		return certmagic.KeyInfo{}, fs.ErrNotExist
	}
	return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
}

// List returns the keys below path: all of them when recursive, else the
// files and directories directly in it.
func (s *Storage) List(ctx context.Context, path string, recursive bool) ([]string, error) {
	prefix := s.Prefix
	if p := strings.Trim(path, "/"); p != "" {
		prefix += p + "/"
	}
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.Bucket), Prefix: aws.String(prefix)}
	if !recursive {
		in.Delimiter = aws.String("/")
	}
	var keys []string
	for range maxListPages {
		out, err := s.API.ListObjectsV2(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", path, err)
		}
		for _, o := range out.Contents {
			keys = append(keys, strings.TrimPrefix(aws.ToString(o.Key), s.Prefix))
		}
		for _, p := range out.CommonPrefixes {
			keys = append(keys, strings.TrimSuffix(strings.TrimPrefix(aws.ToString(p.Prefix), s.Prefix), "/"))
		}
		if !aws.ToBool(out.IsTruncated) {
			if len(keys) == 0 {
				return nil, fs.ErrNotExist
			}
			return keys, nil
		}
		in.ContinuationToken = out.NextContinuationToken
	}
	return nil, fmt.Errorf("listing %s: more than %d pages", path, maxListPages)
}

func (s *Storage) lockKey(name string) string { return s.Prefix + "locks/" + name + ".lock" }

func (s *Storage) lockBody() *bytes.Reader {
	b, _ := json.Marshal(lockBody{Owner: s.id, Expires: s.now().Add(s.lease())})
	return bytes.NewReader(b)
}

// Lock takes the named lock, waiting (polling every second, as long as ctx
// allows) while another holds it.
func (s *Storage) Lock(ctx context.Context, name string) error {
	for {
		ok, err := s.TryLock(ctx, name)
		if err != nil || ok {
			return err
		}
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// TryLock takes the named lock if it is free or its lease has ended.
func (s *Storage) TryLock(ctx context.Context, name string) (bool, error) {
	key := s.lockKey(name)
	out, err := s.API.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(key), Body: s.lockBody(), IfNoneMatch: aws.String("*")})
	if err == nil {
		s.hold(name, aws.ToString(out.ETag))
		return true, nil
	}
	if !lost(err) {
		return false, fmt.Errorf("taking lock %s: %w", name, err)
	}
	// Held: by whom, and until when?
	b, etag, err := s.get(ctx, key)
	if notFound(err) {
		return false, nil // released meanwhile: the next try may get it
	}
	if err != nil {
		return false, fmt.Errorf("reading lock %s: %w", name, err)
	}
	var cur lockBody
	if json.Unmarshal(b, &cur) == nil && s.now().Before(cur.Expires) {
		return false, nil
	}
	// Stale (or unreadable): take it over, unless someone else does first.
	out, err = s.API.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(key), Body: s.lockBody(), IfMatch: aws.String(etag)})
	if lost(err) || notFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("taking over stale lock %s: %w", name, err)
	}
	s.hold(name, aws.ToString(out.ETag))
	return true, nil
}

// hold records a lock taken and renews its lease until it is released.
func (s *Storage) hold(name, etag string) {
	h := &heldLock{etag: etag, stop: make(chan struct{}), done: make(chan struct{})}
	s.mu.Lock()
	s.held[name] = h
	s.mu.Unlock()
	go func() {
		defer close(h.done)
		t := time.NewTicker(s.lease() / 3)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), s.lease()/3)
				s.RenewLockLease(ctx, name, s.lease())
				cancel()
			}
		}
	}()
}

// RenewLockLease extends the lease of a lock this storage holds, by
// lease from now (at least the configured lease).
func (s *Storage) RenewLockLease(ctx context.Context, name string, lease time.Duration) error {
	s.mu.Lock()
	h := s.held[name]
	s.mu.Unlock()
	if h == nil {
		return fmt.Errorf("lock %s is not held here", name)
	}
	if lease < s.lease() {
		lease = s.lease()
	}
	b, _ := json.Marshal(lockBody{Owner: s.id, Expires: s.now().Add(lease)})
	s.mu.Lock()
	etag := h.etag
	s.mu.Unlock()
	out, err := s.API.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(s.lockKey(name)), Body: bytes.NewReader(b), IfMatch: aws.String(etag)})
	if err != nil {
		return fmt.Errorf("renewing lock %s (taken over after its lease ended?): %w", name, err)
	}
	s.mu.Lock()
	h.etag = aws.ToString(out.ETag)
	s.mu.Unlock()
	return nil
}

// Unlock releases a lock this storage holds. A lock taken over by another
// after its lease ended is left to its new holder.
func (s *Storage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	h := s.held[name]
	delete(s.held, name)
	s.mu.Unlock()
	if h == nil {
		return fmt.Errorf("lock %s is not held here", name)
	}
	close(h.stop)
	<-h.done
	s.mu.Lock()
	etag := h.etag
	s.mu.Unlock()
	_, err := s.API.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(s.lockKey(name)), IfMatch: aws.String(etag)})
	if err != nil && !lost(err) && !notFound(err) {
		return fmt.Errorf("releasing lock %s: %w", name, err)
	}
	return nil
}

// String names the storage in certmagic's logs.
func (s *Storage) String() string { return "s3://" + s.Bucket + "/" + s.Prefix }
