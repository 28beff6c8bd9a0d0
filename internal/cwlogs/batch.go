package cwlogs

import (
	"time"
	"unicode/utf8"
)

// PutLogEvents' limits on one call, from its API reference
// (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html).
const (
	// MaxBatchBytes is the largest batch: the sum of the messages' UTF-8
	// bytes plus EventOverhead for each event.
	MaxBatchBytes = 1_048_576
	// EventOverhead is what each event adds to a batch's size.
	EventOverhead = 26
	// MaxBatchEvents is the most events in one call.
	MaxBatchEvents = 10_000
	// MaxSpan is the longest time between a batch's first and last event;
	// a longer batch fails whole.
	MaxSpan = 24 * time.Hour
	// MaxMessageBytes bounds one event's message. The reference said 256 KB
	// per event for years and says 1 MB since 2025; 256 KiB less the
	// overhead is accepted under either reading, and it is also the
	// shipper's bound on the memory one unfinished line may take.
	MaxMessageBytes = 256<<10 - EventOverhead
)

// event is one log line and the time it was written (Unix milliseconds).
type event struct {
	ts  int64
	msg string
}

func (e event) size() int { return len(e.msg) + EventOverhead }

// cut returns how many events from the head of evs make one PutLogEvents
// batch, leaving room for reserveBytes (the size of a report event, with its
// overhead) and one more event when reserveBytes > 0. evs are in time order
// (the shipper stamps them so), so the span is the last one's time less the
// first one's. It always takes at least one event when evs is not empty and
// the first fits beside the reserve (every event does: MaxMessageBytes).
func cut(evs []event, reserveBytes int) int {
	maxEvents, budget := MaxBatchEvents, MaxBatchBytes
	if reserveBytes > 0 {
		maxEvents--
		budget -= reserveBytes
	}
	n, size := 0, 0
	for n < len(evs) && n < maxEvents {
		s := evs[n].size()
		if size+s > budget {
			break
		}
		if n > 0 && time.Duration(evs[n].ts-evs[0].ts)*time.Millisecond >= MaxSpan {
			break
		}
		size += s
		n++
	}
	return n
}

// clip shortens a message to MaxMessageBytes without splitting a UTF-8
// sequence (CloudWatch takes messages as UTF-8 text), and says whether it cut.
func clip(msg []byte) ([]byte, bool) {
	if len(msg) <= MaxMessageBytes {
		return msg, false
	}
	end := MaxMessageBytes
	// At most utf8.UTFMax-1 continuation bytes precede a rune's start.
	for i := 0; i < utf8.UTFMax && end > 0 && !utf8.RuneStart(msg[end]); i++ {
		end--
	}
	return msg[:end], true
}
