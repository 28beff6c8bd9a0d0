package instance

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestChecksPacedByTheGate: while the gate is closed every fast tick is a
// check (a replaced instance serves seconds after its IP reaches the
// network, not a minute later); once open, one check a minute, unless the
// instance's metadata says its public IP is no longer the claimed one.
func TestChecksPacedByTheGate(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := &agent{}
	var moved atomic.Bool
	a.moved = func(context.Context) bool { return moved.Load() }
	a.close(errors.New("not checked yet"))
	fast := make(chan time.Time)
	out := a.paced(ctx, fast)
	t0 := time.Unix(1_800_000_000, 0)
	// check sends a tick and says whether it became a check; skip sends one
	// that must not, then next, which must: if the first had been passed on,
	// the pacer would be blocked handing it over, so the select sees it.
	check := func(at time.Time) bool {
		fast <- at
		return (<-out).Equal(at)
	}
	skipThen := func(skipped, next time.Time) {
		t.Helper()
		fast <- skipped
		select {
		case got := <-out:
			t.Fatalf("tick %v became a check", got.Sub(t0))
		case fast <- next:
		}
		if got := <-out; !got.Equal(next) {
			t.Fatalf("got %v, want %v", got.Sub(t0), next.Sub(t0))
		}
	}
	for i := 0; i < 3; i++ {
		if at := t0.Add(time.Duration(i) * checkWaiting); !check(at) {
			t.Fatalf("closed gate: tick %d was not a check", i)
		}
	}
	var open error
	a.gate.Store(&open)
	// Open: a tick 5 s after the last check is skipped; a minute after, checked.
	skipThen(t0.Add(3*checkWaiting), t0.Add(2*checkWaiting+checkServing))
	// The metadata's public IP is no longer the claimed one: the next
	// fast tick is a check, although the gate is open and the last check
	// was 5 s ago.
	// (A skipped tick leaves the pacer taking the next one, which fails
	// the test instead of blocking it.)
	moved.Store(true)
	at := t0.Add(3*checkWaiting + checkServing)
	fast <- at
	select {
	case got := <-out:
		if !got.Equal(at) {
			t.Fatalf("got %v, want %v", got.Sub(t0), at.Sub(t0))
		}
	case fast <- at.Add(checkWaiting):
		t.Fatal("open, public IP moved: the next fast tick was not a check")
	}
	moved.Store(false)
	a.close(errors.New("wrong IP"))
	if !check(t0.Add(4*checkWaiting + checkServing)) {
		t.Error("closed again: the next fast tick was not a check")
	}
}
