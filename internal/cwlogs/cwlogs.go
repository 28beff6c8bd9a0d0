// Package cwlogs ships an instance's log lines to a CloudWatch Logs stream
// itself: the JSON log, audit and EMF lines of `outgate instance run` reach
// the deployment's log group without a CloudWatch agent to install and patch
// on the instance, and the EMF lines become metrics there exactly as the
// relay function's do (CloudWatch Logs extracts them from any log event).
//
// A Shipper is an io.Writer that never blocks its writers: lines wait in a
// bounded queue and a goroutine sends them in batches (PutLogEvents) when a
// batch is full or every few seconds, and on Close. When the queue is full,
// lines are dropped and counted, and the count arrives in CloudWatch as a
// line of its own in the next batch. Throttling and transient errors are
// retried by the SDK client's retryer, never by a loop here (the two would
// multiply).
//
// On an instance (internal/instance):
//
//	ship, err := cwlogs.New(cloudwatchlogs.NewFromConfig(awsCfg), cwlogs.Options{Group: settings.LogGroup, Stream: instanceID})
//	// the gateway's log and audit lines, also on stderr for the journal:
//	server.Run(ctx, server.Options{LogOutput: io.MultiWriter(os.Stderr, ship), ...})
//	metrics := emf.New(ship.Source()) // InstanceReady, EgressWrongIP
//	ship.Close()                      // after Run has returned
package cwlogs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
)

// Options configure a Shipper.
type Options struct {
	// Group and Stream name where lines go (/outgate/NAME/instance and the
	// instance id). The group must exist; the stream is created.
	Group, Stream string
	// Interval is the longest a line waits in the queue before it is sent
	// (default 5s). A full batch is sent at once.
	Interval time.Duration
	// MaxQueued bounds the bytes of lines waiting or being sent (default
	// 4 MiB: four full batches, about a minute of a busy gateway's audit
	// lines while CloudWatch does not answer).
	MaxQueued int
	// CallTimeout bounds one PutLogEvents or CreateLogStream call with the
	// SDK's retries (default 30s), so a stuck connection cannot stop the
	// shipping for good.
	CallTimeout time.Duration
	// CloseTimeout bounds Close's last flush (default 10s).
	CloseTimeout time.Duration
	// Log receives the shipper's own problems (a failed call), never sent
	// through the shipper itself; default JSON lines on stderr, which
	// systemd keeps in the journal.
	Log *slog.Logger
}

// Shipper sends whole lines to one CloudWatch Logs stream. Its Write is one
// source of lines; writers that may split a line across writes (a
// bufio.Writer) each need a source of their own (Source), so that their
// halves are never joined to another writer's line.
type Shipper struct {
	api  API
	o    Options
	log  *slog.Logger
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	ctx  context.Context // cancelled when Close gives up waiting
	quit context.CancelFunc
	once sync.Once
	main *source

	sources []*source // every source, for Close's partial lines (s.mu)

	mu      sync.Mutex
	pending []event // oldest first, timestamps never decreasing
	queued  int     // bytes of pending and of the batch being sent
	lastTS  int64
	closed  bool
	lost    losses // not yet reported
	created bool   // the stream exists (only the run goroutine uses it)
}

// losses are lines that will not reach CloudWatch as written, by cause.
type losses struct {
	Dropped   int `json:"dropped_queue_full,omitempty"` // the queue was full
	Truncated int `json:"truncated,omitempty"`          // longer than MaxMessageBytes, cut
	Failed    int `json:"failed,omitempty"`             // their PutLogEvents call failed
	Rejected  int `json:"rejected,omitempty"`           // CloudWatch refused them (too old or new)
}

func (l losses) any() bool { return l != losses{} }

func (l *losses) add(o losses) {
	l.Dropped += o.Dropped
	l.Truncated += o.Truncated
	l.Failed += o.Failed
	l.Rejected += o.Rejected
}

// ReportMsg is the msg of the line that reports lost lines.
const ReportMsg = "log lines lost on the way to CloudWatch Logs"

// New starts a Shipper; Close it to send what is queued.
func New(api API, o Options) (*Shipper, error) {
	if o.Group == "" || o.Stream == "" {
		return nil, errors.New("cwlogs: a log group and a stream name are required")
	}
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.MaxQueued <= 0 {
		o.MaxQueued = 4 << 20
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 30 * time.Second
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = 10 * time.Second
	}
	s := &Shipper{api: api, o: o, log: o.Log, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	s.ctx, s.quit = context.WithCancel(context.Background())
	s.main = &source{s: s}
	s.sources = []*source{s.main}
	go s.run()
	return s, nil
}

// Write takes whole lines (a trailing part without a newline waits for the
// rest). It never blocks on CloudWatch and never fails before Close.
func (s *Shipper) Write(p []byte) (int, error) { return s.main.Write(p) }

// Source returns a writer of its own lines into the same stream.
func (s *Shipper) Source() io.Writer {
	src := &source{s: s}
	s.mu.Lock()
	s.sources = append(s.sources, src)
	s.mu.Unlock()
	return src
}

// source joins the parts of lines split across writes. Its state is guarded
// by the shipper's mutex.
type source struct {
	s       *Shipper
	carry   []byte
	clipped bool // carry hit MaxMessageBytes; the rest of the line is dropped
}

func (src *source) Write(p []byte) (int, error) {
	s := src.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, os.ErrClosed
	}
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		part := p
		if i >= 0 {
			part = p[:i]
		}
		if room := MaxMessageBytes + 1 - len(src.carry); len(part) > room {
			// Keep one byte past the limit so clip knows to cut; the rest
			// of the line is never stored.
			part = part[:room]
			src.clipped = true
		}
		src.carry = append(src.carry, part...)
		if i < 0 {
			break
		}
		s.add(src.carry, src.clipped)
		src.carry, src.clipped = src.carry[:0], false
		p = p[i+1:]
	}
	if cap(src.carry) > 64<<10 && len(src.carry) == 0 {
		src.carry = nil // one long line does not pin its buffer
	}
	return n, nil
}

// add queues one line (without its newline); s.mu is held.
func (s *Shipper) add(line []byte, clipped bool) {
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 {
		return // CloudWatch refuses empty messages
	}
	if !utf8.Valid(line) {
		line = bytes.ToValidUTF8(line, []byte("\uFFFD"))
	}
	line, cutHere := clip(line)
	e := event{ts: time.Now().UnixMilli(), msg: string(line)}
	// A batch must be in time order: a clock stepped back (NTP) must not
	// fail the next PutLogEvents.
	e.ts = max(e.ts, s.lastTS)
	if s.queued+e.size() > s.o.MaxQueued {
		s.lost.Dropped++
		return
	}
	if clipped || cutHere {
		s.lost.Truncated++
	}
	s.lastTS = e.ts
	s.pending = append(s.pending, e)
	s.queued += e.size()
	if len(s.pending) >= MaxBatchEvents || s.queued >= MaxBatchBytes {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// Close sends what is queued (within CloseTimeout) and stops. Lines written
// after Close are refused, so close it after what writes to it (the
// server's buffered log writer flushes when Run returns). A partial line
// left in a source is sent as it is.
func (s *Shipper) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		for _, src := range s.sources {
			if len(src.carry) > 0 {
				s.add(src.carry, src.clipped)
				src.carry = nil
			}
		}
		s.closed = true
		s.mu.Unlock()
		close(s.stop)
	})
	t := time.NewTimer(s.o.CloseTimeout)
	defer t.Stop()
	select {
	case <-s.done:
		return nil
	case <-t.C:
		s.quit()
		<-s.done
		return errors.New("cwlogs: the last log lines were not all sent within the close timeout")
	}
}

func (s *Shipper) run() {
	defer close(s.done)
	defer s.quit()
	t := time.NewTicker(s.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.kick:
		case <-s.stop:
			if !s.flush() {
				s.mu.Lock()
				left := len(s.pending)
				s.mu.Unlock()
				if left > 0 {
					s.log.Error("log lines not sent to CloudWatch Logs before exit", "group", s.o.Group, "stream", s.o.Stream, "lines", left)
				}
			}
			return
		}
		s.flush()
	}
}

// flush sends every queued line, a batch at a time, and the report of lost
// lines in the first batch. It stops at the first failed call and says so.
func (s *Shipper) flush() bool {
	for {
		s.mu.Lock()
		lost := s.lost
		report := reportEvent(lost, s.lastTS)
		n := cut(s.pending, sizeOf(report))
		if n == 0 && report == nil {
			s.mu.Unlock()
			return true
		}
		batch := make([]types.InputLogEvent, 0, n+1)
		if report != nil {
			if n > 0 {
				report.ts = s.pending[0].ts
			}
			batch = append(batch, input(*report))
		}
		size := 0
		for _, e := range s.pending[:n] {
			batch = append(batch, input(e))
			size += e.size()
		}
		// The sent lines leave the array too, or it would hold them past
		// MaxQueued until the next append moves it.
		clear(s.pending[:n])
		s.pending = s.pending[n:]
		if len(s.pending) == 0 {
			s.pending = nil
		}
		s.lost = losses{}
		s.mu.Unlock()

		result := s.put(batch)
		failed := result.Failed > 0
		s.mu.Lock()
		s.queued -= size
		if failed {
			// The report went down with the batch: carry its counts on.
			s.lost.add(lost)
			result.Failed = n
		}
		s.lost.add(result)
		s.mu.Unlock()
		if failed {
			return false // try the rest at the next tick, not in a tight loop
		}
	}
}

func sizeOf(e *event) int {
	if e == nil {
		return 0
	}
	return e.size()
}

// reportEvent is a log line in slog's JSON shape that counts lost lines, or
// nil when none were lost.
func reportEvent(l losses, lastTS int64) *event {
	if !l.any() {
		return nil
	}
	ts := max(time.Now().UnixMilli(), lastTS)
	b, _ := json.Marshal(struct {
		Time  string `json:"time"`
		Level string `json:"level"`
		Msg   string `json:"msg"`
		losses
	}{time.UnixMilli(ts).UTC().Format(time.RFC3339Nano), "WARN", ReportMsg, l})
	return &event{ts: ts, msg: string(b)}
}

func input(e event) types.InputLogEvent {
	return types.InputLogEvent{Message: aws.String(e.msg), Timestamp: aws.Int64(e.ts)}
}

// put sends one batch, creating the stream first when needed, and returns
// what was lost: Failed (any non-zero value: the whole batch) or Rejected.
func (s *Shipper) put(batch []types.InputLogEvent) losses {
	for attempt := 0; attempt < 2; attempt++ {
		if !s.created {
			if err := s.createStream(); err != nil {
				s.log.Error("cannot create the CloudWatch Logs stream; log lines are lost", "group", s.o.Group, "stream", s.o.Stream, "lines", len(batch), "error", err)
				return losses{Failed: 1}
			}
			s.created = true
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.o.CallTimeout)
		out, err := s.api.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{
			LogGroupName: aws.String(s.o.Group), LogStreamName: aws.String(s.o.Stream), LogEvents: batch,
		})
		cancel()
		var nf *types.ResourceNotFoundException
		if errors.As(err, &nf) && attempt == 0 {
			s.created = false // the stream was deleted under us: make it again, once
			continue
		}
		if err != nil {
			s.log.Error("cannot send log lines to CloudWatch Logs; they are lost", "group", s.o.Group, "stream", s.o.Stream, "lines", len(batch), "error", err)
			return losses{Failed: 1}
		}
		return losses{Rejected: rejected(out.RejectedLogEventsInfo, len(batch))}
	}
	return losses{Failed: 1}
}

func (s *Shipper) createStream() error {
	ctx, cancel := context.WithTimeout(s.ctx, s.o.CallTimeout)
	defer cancel()
	_, err := s.api.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{
		LogGroupName: aws.String(s.o.Group), LogStreamName: aws.String(s.o.Stream),
	})
	var exists *types.ResourceAlreadyExistsException
	if errors.As(err, &exists) {
		return nil // a restarted process on the same instance
	}
	return err
}

// rejected counts the events CloudWatch took no part of: the too-old and
// expired ones at the head (indices exclusive) and the too-new ones at the
// tail (index inclusive).
func rejected(info *types.RejectedLogEventsInfo, n int) int {
	if info == nil {
		return 0
	}
	head := 0
	if info.TooOldLogEventEndIndex != nil {
		head = int(*info.TooOldLogEventEndIndex)
	}
	if info.ExpiredLogEventEndIndex != nil {
		head = max(head, int(*info.ExpiredLogEventEndIndex))
	}
	tail := 0
	if info.TooNewLogEventStartIndex != nil {
		tail = n - int(*info.TooNewLogEventStartIndex)
	}
	return min(n, max(0, head)+max(0, tail))
}
