package instance

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestChecksPacedByTheGate: while the gate is closed every fast tick is a
// check (a replaced instance serves seconds after its IP reaches the
// network, not a minute later); once open, one check a minute.
func TestChecksPacedByTheGate(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := &agent{}
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
	a.close(errors.New("wrong IP"))
	if !check(t0.Add(3*checkWaiting + checkServing)) {
		t.Error("closed again: the next fast tick was not a check")
	}
}
