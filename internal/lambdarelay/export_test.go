package lambdarelay

import "time"

// SetClock lets tests move time for the reload schedule.
func SetClock(h *Handler, now func() time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.now = now
	h.checked = now()
}
