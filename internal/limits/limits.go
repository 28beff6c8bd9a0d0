// Package limits holds the per-client budgets: a token bucket for request
// rate and counting gates for concurrent requests and tunnels.
package limits

import (
	"sync"
	"sync/atomic"
	"time"
)

// Bucket is a token bucket: rate tokens a second, at most burst saved up.
type Bucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
	now    func() time.Time
}

// NewBucket returns a full bucket.
func NewBucket(rate float64, burst int) *Bucket {
	return &Bucket{rate: rate, burst: float64(burst), tokens: float64(burst), now: time.Now}
}

// Take takes one token. If there is none it reports how long until there is.
func (b *Bucket) Take() (ok bool, wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}

// Gate counts holders up to a maximum.
type Gate struct {
	max int64
	n   atomic.Int64
}

// NewGate returns a gate that admits at most max holders at once.
func NewGate(max int) *Gate { return &Gate{max: int64(max)} }

// Enter admits one holder if there is room; the caller must Leave after.
func (g *Gate) Enter() bool {
	if g.n.Add(1) > g.max {
		g.n.Add(-1)
		return false
	}
	return true
}

// Leave releases a holder admitted by Enter.
func (g *Gate) Leave() { g.n.Add(-1) }

// InUse reports the current holders.
func (g *Gate) InUse() int64 { return g.n.Load() }
