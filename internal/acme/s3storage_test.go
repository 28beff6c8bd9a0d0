package acme_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/outgate/outgate/internal/acme"
	"github.com/outgate/outgate/internal/testutil"
)

// motoS3 is the real SDK client on moto_server with a fresh bucket: the
// wire calls and the conditional writes (If-None-Match, If-Match) are
// moto's.
func motoS3(t *testing.T) *s3.Client {
	t.Helper()
	testutil.Moto(t)
	ac, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	api := s3.NewFromConfig(ac, func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := api.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("staging")}); err != nil {
		t.Fatal(err)
	}
	return api
}

// TestStorageFiles: certmagic's file semantics over S3 objects, under the
// deployment's prefix only.
func TestStorageFiles(t *testing.T) {
	api := motoS3(t)
	ctx := context.Background()
	s := acme.NewStorage(api, "staging", "prod/certs")
	other := acme.NewStorage(api, "staging", "other/certs/")
	if _, err := s.Load(ctx, "certificates/ca/gw.example/gw.example.crt"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of nothing: %v, want fs.ErrNotExist", err)
	}
	for k, v := range map[string]string{
		"certificates/ca/gw.example/gw.example.crt": "cert", "certificates/ca/gw.example/gw.example.key": "key",
		"certificates/ca/gw.example/gw.example.json": "meta", "acme/ca/users/x/x.json": "account",
	} {
		if err := s.Store(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := s.Load(ctx, "certificates/ca/gw.example/gw.example.key"); err != nil || string(b) != "key" {
		t.Errorf("Load: %q, %v", b, err)
	}
	if _, err := other.Load(ctx, "certificates/ca/gw.example/gw.example.key"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("another deployment's prefix sees prod's key: %v", err)
	}
	obj, err := api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("staging"), Key: aws.String("prod/certs/certificates/ca/gw.example/gw.example.key")})
	if err != nil || aws.ToInt64(obj.ContentLength) != 3 {
		t.Errorf("the object is not under the prefix: %v", err)
	}
	if fi, err := s.Stat(ctx, "certificates/ca/gw.example/gw.example.crt"); err != nil || !fi.IsTerminal || fi.Size != 4 {
		t.Errorf("Stat file: %+v, %v", fi, err)
	}
	if fi, err := s.Stat(ctx, "certificates/ca"); err != nil || fi.IsTerminal {
		t.Errorf("Stat directory: %+v, %v", fi, err)
	}
	if !s.Exists(ctx, "certificates") || s.Exists(ctx, "certificates/c") || s.Exists(ctx, "nothing") {
		t.Error("Exists: wrong answer for a directory, a partial component or nothing")
	}
	top, err := s.List(ctx, "", false)
	slices.Sort(top)
	if err != nil || !slices.Equal(top, []string{"acme", "certificates"}) {
		t.Errorf("List top: %v, %v", top, err)
	}
	all, err := s.List(ctx, "certificates", true)
	slices.Sort(all)
	if err != nil || len(all) != 3 || all[0] != "certificates/ca/gw.example/gw.example.crt" {
		t.Errorf("List recursive: %v, %v", all, err)
	}
	if err := s.Delete(ctx, "certificates"); err != nil {
		t.Fatal(err)
	}
	if s.Exists(ctx, "certificates/ca/gw.example/gw.example.crt") || !s.Exists(ctx, "acme/ca/users/x/x.json") {
		t.Error("Delete of a directory: wrong keys left")
	}
	if err := s.Delete(ctx, "certificates"); err != nil {
		t.Errorf("Delete of nothing: %v", err)
	}
}

// lockOwner reads who holds a lock, from the object itself.
func lockOwner(t *testing.T, api *s3.Client, name string) (string, bool) {
	t.Helper()
	out, err := api.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("staging"), Key: aws.String("prod/certs/locks/" + name + ".lock")})
	if err != nil {
		return "", false
	}
	defer out.Body.Close()
	var b struct{ Owner string }
	json.NewDecoder(out.Body).Decode(&b)
	return b.Owner, true
}

// TestStorageLocks: one holder at a time across instances; a lock whose
// lease ended is taken over, and its old holder then neither renews nor
// releases it.
func TestStorageLocks(t *testing.T) {
	api := motoS3(t)
	ctx := context.Background()
	a := acme.NewStorage(api, "staging", "prod/certs/")
	b := acme.NewStorage(api, "staging", "prod/certs/")
	if ok, err := a.TryLock(ctx, "issue_cert_gw"); !ok || err != nil {
		t.Fatalf("a: TryLock of a free lock: %v, %v", ok, err)
	}
	if ok, err := b.TryLock(ctx, "issue_cert_gw"); ok || err != nil {
		t.Fatalf("b: TryLock of a held lock: %v, %v", ok, err)
	}
	// Lock waits while a holds it; a's release lets it through.
	got := make(chan error, 1)
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	go func() { got <- b.Lock(lctx, "issue_cert_gw") }()
	select {
	case err := <-got:
		t.Fatalf("b's Lock returned while a holds the lock: %v", err)
	default:
	}
	if err := a.Unlock(ctx, "issue_cert_gw"); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("b's Lock after a's release: %v", err)
	}
	if err := b.RenewLockLease(ctx, "issue_cert_gw", time.Minute); err != nil {
		t.Errorf("b renews its own lease: %v", err)
	}

	// b's lease ends (c's clock is past it): c takes the lock over.
	c := acme.NewStorage(api, "staging", "prod/certs/")
	c.Now = func() time.Time { return time.Now().Add(acme.DefaultLockLease + time.Minute) }
	if ok, err := c.TryLock(ctx, "issue_cert_gw"); !ok || err != nil {
		t.Fatalf("c: TryLock of a stale lock: %v, %v", ok, err)
	}
	owner, _ := lockOwner(t, api, "issue_cert_gw")
	if err := b.RenewLockLease(ctx, "issue_cert_gw", time.Minute); err == nil {
		t.Error("b renewed a lease it lost")
	}
	if err := b.Unlock(ctx, "issue_cert_gw"); err != nil {
		t.Errorf("b's Unlock of a lock taken over: %v", err)
	}
	if now, ok := lockOwner(t, api, "issue_cert_gw"); !ok || now != owner {
		t.Errorf("b's Unlock removed c's lock (owner %q -> %q, present %v)", owner, now, ok)
	}
	if err := c.Unlock(ctx, "issue_cert_gw"); err != nil {
		t.Fatal(err)
	}
	if _, ok := lockOwner(t, api, "issue_cert_gw"); ok {
		t.Error("the lock object is left after its holder's Unlock")
	}
}

// TestStorageLockOneWinner: instances trying at once, one gets the lock.
// (moto checks a condition and writes in two steps, where S3 does both at
// once; requests that overlap exactly could both pass in moto, so the
// tries are spread over distinct lock names per round and the rounds are
// few: what is checked is that losers see a held lock as held.)
func TestStorageLockOneWinner(t *testing.T) {
	api := motoS3(t)
	ctx := context.Background()
	var stores []*acme.Storage
	for range 4 {
		stores = append(stores, acme.NewStorage(api, "staging", "prod/certs/"))
	}
	if ok, _ := stores[0].TryLock(ctx, "renew"); !ok {
		t.Fatal("first TryLock failed")
	}
	var wg sync.WaitGroup
	wins := make([]bool, len(stores))
	for i := 1; i < len(stores); i++ {
		wg.Add(1)
		go func() { defer wg.Done(); wins[i], _ = stores[i].TryLock(ctx, "renew") }()
	}
	wg.Wait()
	for i, w := range wins[1:] {
		if w {
			t.Errorf("instance %d took a held lock", i+1)
		}
	}
	stores[0].Unlock(ctx, "renew")
}

// TestStorageHolderRenewsItsLease: while a lock is held its holder pushes
// the lease's end forward (every third of the lease), so a long order is
// not taken over; after Unlock nothing renews it and it is gone.
func TestStorageHolderRenewsItsLease(t *testing.T) {
	api := motoS3(t)
	ctx := context.Background()
	a := acme.NewStorage(api, "staging", "prod/certs/")
	a.LockLease = 600 * time.Millisecond
	if ok, err := a.TryLock(ctx, "issue"); !ok || err != nil {
		t.Fatalf("TryLock: %v %v", ok, err)
	}
	expires := func() time.Time {
		out, err := api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("staging"), Key: aws.String("prod/certs/locks/issue.lock")})
		if err != nil {
			return time.Time{}
		}
		defer out.Body.Close()
		var b struct{ Expires time.Time }
		json.NewDecoder(out.Body).Decode(&b)
		return b.Expires
	}
	first := expires()
	deadline := time.Now().Add(10 * time.Second)
	for !expires().After(first) {
		if time.Now().After(deadline) {
			t.Fatal("the holder did not renew its lease")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Another instance whose clock is just past the first lease's end
	// still finds the lock held.
	b := acme.NewStorage(api, "staging", "prod/certs/")
	b.Now = func() time.Time { return first.Add(time.Millisecond) }
	if ok, _ := b.TryLock(ctx, "issue"); ok {
		t.Error("a renewed lock was taken over")
	}
	if err := a.Unlock(ctx, "issue"); err != nil {
		t.Fatal(err)
	}
	if !expires().IsZero() {
		t.Error("the lock is left after Unlock")
	}
}
