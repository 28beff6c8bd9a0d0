package limits

import (
	"testing"
	"time"
)

func TestBucket(t *testing.T) {
	now := time.Unix(1000, 0)
	b := NewBucket(2, 3) // 2 tokens a second, 3 saved at most
	b.now = func() time.Time { return now }
	for i := 0; i < 3; i++ {
		if ok, _ := b.Take(); !ok {
			t.Fatalf("take %d of the burst refused", i)
		}
	}
	ok, wait := b.Take()
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("empty bucket: ok=%v wait=%v, want a refusal with 500ms to wait", ok, wait)
	}
	now = now.Add(500 * time.Millisecond)
	if ok, _ := b.Take(); !ok {
		t.Fatal("a token should have refilled after 500ms")
	}
	now = now.Add(time.Hour)
	n := 0
	for ok, _ := b.Take(); ok; ok, _ = b.Take() {
		n++
	}
	if n != 3 {
		t.Fatalf("after a long idle %d tokens were available, want the burst of 3", n)
	}
}

func TestGate(t *testing.T) {
	g := NewGate(2)
	if !g.Enter() || !g.Enter() || g.Enter() {
		t.Fatal("gate of 2 did not admit exactly 2")
	}
	g.Leave()
	if !g.Enter() || g.InUse() != 2 {
		t.Fatalf("after a leave: in use %d", g.InUse())
	}
}
