package cwlogs

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The limits below are PutLogEvents' own, from its API reference
// (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html):
// "The maximum batch size is 1,048,576 bytes. This size is calculated as the
// sum of all event messages in UTF-8, plus 26 bytes for each log event";
// "The maximum number of log events in a batch is 10,000"; "A batch of log
// events in a single request cannot span more than 24 hours. Otherwise, the
// operation fails"; "Each log event can be no larger than 256 KB" (1 MB in
// the reference's 2025 text); "The log events in the batch must be in
// chronological order by their timestamp". moto_server checks only the last.

func events(n, msgLen int, step time.Duration) []event {
	evs := make([]event, n)
	for i := range evs {
		evs[i] = event{ts: int64(i) * step.Milliseconds(), msg: strings.Repeat("x", msgLen)}
	}
	return evs
}

func TestCutLimits(t *testing.T) {
	full := MaxMessageBytes // an event of exactly 256 KiB with its overhead
	tests := []struct {
		name    string
		evs     []event
		reserve int
		want    int
	}{
		{"empty", nil, 0, 0},
		{"10,000 events fit", events(10_000, 1, 0), 0, 10_000},
		{"the 10,001st waits", events(10_001, 1, 0), 0, 10_000},
		{"a report takes one of the 10,000", events(10_001, 1, 0), 40, 9_999},
		{"four 256 KiB events are exactly 1,048,576 bytes", events(5, full, 0), 0, 4},
		{"one byte more does not fit", append(events(3, full, 0), event{msg: strings.Repeat("x", full+1)}), 0, 3},
		{"a report's bytes are kept free", events(4, full, 0), 100, 3},
		{"sizes count the 26 bytes of each event", events(1_048_576/(26+100)+1, 100, 0), 0, 1_048_576 / (26 + 100)},
		{"just under 24 hours is one batch", []event{{ts: 0, msg: "a"}, {ts: (24*time.Hour - time.Millisecond).Milliseconds(), msg: "b"}}, 0, 2},
		{"24 hours apart is two batches", []event{{ts: 0, msg: "a"}, {ts: (24 * time.Hour).Milliseconds(), msg: "b"}}, 0, 1},
		{"the span is from the first event", events(5, 1, 10*time.Hour), 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := cut(tt.evs, tt.reserve)
			if n != tt.want {
				t.Fatalf("cut took %d events, want %d", n, tt.want)
			}
			size := tt.reserve
			for _, e := range tt.evs[:n] {
				size += e.size()
			}
			if size > MaxBatchBytes {
				t.Fatalf("batch of %d bytes is over PutLogEvents' %d", size, MaxBatchBytes)
			}
		})
	}
}

func TestClip(t *testing.T) {
	euro := "€" // 3 bytes in UTF-8
	tests := []struct {
		name    string
		in      string
		wantLen int
		cut     bool
	}{
		{"short line is kept", "hello", 5, false},
		{"exactly the limit is kept", strings.Repeat("a", MaxMessageBytes), MaxMessageBytes, false},
		{"one byte over is cut", strings.Repeat("a", MaxMessageBytes+1), MaxMessageBytes, true},
		{"a rune across the limit goes whole", strings.Repeat("a", MaxMessageBytes-1) + euro, MaxMessageBytes - 1, true},
		{"a rune ending at the limit stays", strings.Repeat("a", MaxMessageBytes-3) + euro + "z", MaxMessageBytes, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, cut := clip([]byte(tt.in))
			if len(got) != tt.wantLen || cut != tt.cut {
				t.Fatalf("clip: %d bytes, cut %v; want %d, %v", len(got), cut, tt.wantLen, tt.cut)
			}
			if !utf8.Valid(got) {
				t.Fatal("clip split a UTF-8 sequence")
			}
		})
	}
}

// TestLines checks what one source makes of its writes: lines split across
// writes are joined, several lines in one write are separated, and what
// CloudWatch would refuse or garble (empty lines, invalid UTF-8, overlong
// lines) is fixed before it is queued.
func TestLines(t *testing.T) {
	long := strings.Repeat("L", MaxMessageBytes+500)
	tests := []struct {
		name      string
		writes    []string
		want      []string
		truncated int
	}{
		{"one line per write", []string{"a\n", "b\n"}, []string{"a", "b"}, 0},
		{"many lines in one write", []string{"a\nb\nc\n"}, []string{"a", "b", "c"}, 0},
		{"a line across writes (bufio)", []string{`{"msg":"he`, `llo"}` + "\n"}, []string{`{"msg":"hello"}`}, 0},
		{"an unfinished line waits", []string{"a\nb"}, []string{"a"}, 0},
		{"empty lines and CRLF", []string{"\n\r\na\r\n"}, []string{"a"}, 0},
		{"invalid UTF-8 replaced", []string{"a\xffb\n"}, []string{"a\uFFFDb"}, 0},
		{"an overlong line is cut and counted", []string{long + "\nnext\n"}, []string{long[:MaxMessageBytes], "next"}, 1},
		{"an overlong line across writes", []string{long[:1000], long[1000:], "\n"}, []string{long[:MaxMessageBytes]}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Shipper{o: Options{MaxQueued: 8 << 20}, kick: make(chan struct{}, 1)}
			src := &source{s: s}
			for _, w := range tt.writes {
				if n, err := src.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			var got []string
			for _, e := range s.pending {
				got = append(got, e.msg)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Fatalf("lines %q, want %q", short(got), short(tt.want))
			}
			if s.lost.Truncated != tt.truncated {
				t.Fatalf("truncated %d, want %d", s.lost.Truncated, tt.truncated)
			}
			if len(src.carry) > MaxMessageBytes+1 {
				t.Fatalf("a partial line holds %d bytes", len(src.carry))
			}
		})
	}
}

func short(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		if len(s) > 40 {
			s = s[:20] + "…" + s[len(s)-10:]
		}
		out[i] = s
	}
	return out
}

// TestQueueBound checks that the queue never holds more than MaxQueued
// bytes: the rest is dropped and counted, and Write still returns at once.
func TestQueueBound(t *testing.T) {
	s := &Shipper{o: Options{MaxQueued: 1000}, kick: make(chan struct{}, 1)}
	line := strings.Repeat("q", 74) + "\n" // 100 bytes queued with its overhead
	for range 25 {
		(&source{s: s}).Write([]byte(line)) // no run goroutine: nothing leaves the queue
	}
	if s.queued > 1000 || len(s.pending) != 10 || s.lost.Dropped != 15 {
		t.Fatalf("queued %d bytes in %d lines, dropped %d; want at most 1000 bytes, 10 lines, 15 dropped", s.queued, len(s.pending), s.lost.Dropped)
	}
}

// FuzzLines: whatever bytes arrive, and however they are split across
// writes, the queued lines are the input's lines (empty ones left out,
// invalid UTF-8 replaced), each one valid UTF-8 within MaxMessageBytes.
func FuzzLines(f *testing.F) {
	f.Add([]byte("a\nb\n"), uint8(1))
	f.Add([]byte("{\"msg\":\"é\"}\r\n\n\xff\xfe\n"), uint8(3))
	f.Add([]byte("no newline"), uint8(0))
	f.Add([]byte("a\n\r"), uint8(2))
	f.Fuzz(func(t *testing.T, in []byte, split uint8) {
		s := &Shipper{o: Options{MaxQueued: 1 << 30}, kick: make(chan struct{}, 1)}
		src := &source{s: s}
		at := min(int(split), len(in))
		src.Write(in[:at])
		src.Write(in[at:])
		var want []string
		lines := strings.Split(string(in), "\n")
		// The last part has no newline after it (it is "" when the input
		// ends with one): it waits for the rest of its line.
		for _, l := range lines[:len(lines)-1] {
			l = strings.ToValidUTF8(strings.TrimSuffix(l, "\r"), "\uFFFD")
			if c, _ := clip([]byte(l)); l != "" {
				want = append(want, string(c))
			}
		}
		if len(s.pending) != len(want) {
			t.Fatalf("%d lines queued, want %d", len(s.pending), len(want))
		}
		for i, e := range s.pending {
			if !utf8.ValidString(e.msg) || len(e.msg) > MaxMessageBytes || e.msg != want[i] {
				t.Fatalf("line %d queued as %q, want %q", i, e.msg, want[i])
			}
		}
	})
}

// TestTimeOrderSurvivesAClockStep: PutLogEvents fails a batch whose events
// are out of time order, so a line written after the clock stepped back
// (NTP) takes the time of the line before it.
func TestTimeOrderSurvivesAClockStep(t *testing.T) {
	s := &Shipper{o: Options{MaxQueued: 1 << 20}, kick: make(chan struct{}, 1)}
	ahead := time.Now().Add(time.Hour).UnixMilli() // as if the clock was an hour fast, then corrected
	s.lastTS = ahead
	(&source{s: s}).Write([]byte("after the step\n"))
	if len(s.pending) != 1 || s.pending[0].ts != ahead {
		t.Fatalf("line stamped %d, want %d (the previous line's time)", s.pending[0].ts, ahead)
	}
}
