package cwlogs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"

	"github.com/outgate/outgate/internal/emf"
	"github.com/outgate/outgate/internal/testutil"
)

// checked passes calls to CloudWatch Logs (moto_server) and fails the test
// when a PutLogEvents call breaks a limit of the API reference that moto
// does not enforce (batch_test.go quotes them). It can also hold calls
// (gate) and tell when one has returned (sent). It is not a fake: every
// call goes over the wire.
type checked struct {
	API
	t     *testing.T
	calls atomic.Int64
	gate  chan struct{} // when set, each PutLogEvents waits for a value
	in    chan struct{} // when set, told when a PutLogEvents starts
	sent  chan struct{} // when set, told when a PutLogEvents returns
	// created, when set, is told when a CreateLogStream returns.
	created chan struct{}
}

func (c *checked) CreateLogStream(ctx context.Context, in *cloudwatchlogs.CreateLogStreamInput, opts ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.CreateLogStreamOutput, error) {
	out, err := c.API.CreateLogStream(ctx, in, opts...)
	if c.created != nil {
		select {
		case c.created <- struct{}{}:
		default:
		}
	}
	return out, err
}

func (c *checked) PutLogEvents(ctx context.Context, in *cloudwatchlogs.PutLogEventsInput, opts ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.PutLogEventsOutput, error) {
	c.calls.Add(1)
	size := 0
	for i, e := range in.LogEvents {
		size += len(aws.ToString(e.Message)) + 26
		if len(aws.ToString(e.Message)) == 0 || len(aws.ToString(e.Message))+26 > 256<<10 {
			c.t.Errorf("event of %d bytes", len(aws.ToString(e.Message)))
		}
		if i > 0 && aws.ToInt64(e.Timestamp) < aws.ToInt64(in.LogEvents[i-1].Timestamp) {
			c.t.Errorf("events out of time order")
		}
	}
	if n := len(in.LogEvents); n == 0 || n > 10_000 || size > 1_048_576 ||
		aws.ToInt64(in.LogEvents[n-1].Timestamp)-aws.ToInt64(in.LogEvents[0].Timestamp) > (24*time.Hour).Milliseconds() {
		c.t.Errorf("PutLogEvents batch of %d events, %d bytes, breaks the documented limits", n, size)
	}
	if c.in != nil {
		select {
		case c.in <- struct{}{}:
		default:
		}
	}
	if c.gate != nil {
		<-c.gate
	}
	out, err := c.API.PutLogEvents(ctx, in, opts...)
	if c.sent != nil {
		select {
		case c.sent <- struct{}{}:
		default:
		}
	}
	return out, err
}

// TestAgainstMoto runs the shipper over the real CloudWatch Logs wire
// protocol (moto_server, one for the package's cases, each in its own log
// group) and reads what arrived back with GetLogEvents.
func TestAgainstMoto(t *testing.T) {
	endpoint := testutil.Moto(t)
	ctx := context.Background()
	ac, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	client := cloudwatchlogs.NewFromConfig(ac)
	group := func(t *testing.T) string {
		name := "/outgate/" + strings.ReplaceAll(t.Name(), "/", "-") + "/instance"
		if _, err := client.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(name)}); err != nil {
			t.Fatal(err)
		}
		return name
	}
	read := func(t *testing.T, group, stream string) []string {
		t.Helper()
		var got []string
		p := cloudwatchlogs.NewGetLogEventsPaginator(client, &cloudwatchlogs.GetLogEventsInput{
			LogGroupName: aws.String(group), LogStreamName: aws.String(stream), StartFromHead: aws.Bool(true)})
		for i := 0; p.HasMorePages() && i < 100; i++ {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page.Events {
				got = append(got, aws.ToString(e.Message))
			}
		}
		return got
	}
	quiet := func(t *testing.T) (*slog.Logger, *testutil.SafeBuffer) {
		var b testutil.SafeBuffer
		return slog.New(slog.NewJSONHandler(&b, nil)), &b
	}

	t.Run("lines arrive whole and in order, in batches within the limits", func(t *testing.T) {
		g := group(t)
		api := &checked{API: client, t: t}
		log, errs := quiet(t)
		s, err := New(api, Options{Group: g, Stream: "i-0123456789abcdef0", Interval: time.Hour, MaxQueued: 64 << 20, Log: log})
		if err != nil {
			t.Fatal(err)
		}
		// The gateway's log and audit lines come through a bufio.Writer that
		// splits lines at 64 KiB; the EMF lines from another writer.
		var want, wantEMF []string
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := emf.New(s.Source())
			for i := range 200 {
				m.Emit(map[string]string{"Deployment": "d", "AZ": "us-east-1a"}, emf.Set{Dimensions: [][]string{{"Deployment", "AZ"}},
					Metrics: []emf.Metric{{Name: "InstanceReady", Unit: "None", Value: float64(i % 2)}}})
			}
		}()
		var chunk []byte
		for i := range 25_000 {
			line := fmt.Sprintf(`{"level":"INFO","msg":"request","n":%d,"pad":"%s"}`, i, strings.Repeat("p", i%300))
			if i%5000 == 4999 {
				line = fmt.Sprintf(`{"level":"INFO","msg":"big","n":%d,"pad":"%s"}`, i, strings.Repeat("b", 200<<10))
			}
			want = append(want, line)
			chunk = append(chunk, line+"\n"...)
			for len(chunk) >= 64<<10 {
				s.Write(chunk[:64<<10])
				chunk = chunk[64<<10:]
			}
		}
		s.Write(chunk)
		wg.Wait()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range read(t, g, "i-0123456789abcdef0") {
			if strings.Contains(m, `"_aws"`) {
				wantEMF = append(wantEMF, m)
				continue
			}
			got = append(got, m)
		}
		if len(got) != len(want) {
			t.Fatalf("%d log lines arrived, want %d", len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("line %d arrived as %.80q, want %.80q", i, got[i], want[i])
			}
		}
		if len(wantEMF) != 200 {
			t.Fatalf("%d EMF lines arrived, want 200", len(wantEMF))
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(wantEMF[1]), &m); err != nil || m["InstanceReady"] != 1.0 {
			t.Fatalf("EMF line arrived as %s (%v)", wantEMF[1], err)
		}
		// 25,200 lines take at least three calls (10,000 a call), and the
		// five 200 KiB lines push some of them to the byte limit.
		if n := api.calls.Load(); n < 3 {
			t.Fatalf("%d PutLogEvents calls for 25,200 lines", n)
		}
		if errs.String() != "" {
			t.Fatalf("shipper logged problems: %s", errs)
		}
	})

	t.Run("an existing stream is written to", func(t *testing.T) {
		g := group(t)
		if _, err := client.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(g), LogStreamName: aws.String("i-1")}); err != nil {
			t.Fatal(err)
		}
		log, errs := quiet(t)
		s, _ := New(&checked{API: client, t: t}, Options{Group: g, Stream: "i-1", Log: log})
		fmt.Fprintln(s, "after a restart")
		s.Close()
		if got := read(t, g, "i-1"); len(got) != 1 || got[0] != "after a restart" || errs.String() != "" {
			t.Fatalf("read back %q; shipper log %s", got, errs)
		}
	})

	t.Run("lines dropped while the queue is full are counted in the next batch", func(t *testing.T) {
		g := group(t)
		log, _ := quiet(t)
		// The queue takes ten of these lines (100 bytes each with the
		// overhead); no flush happens before Close.
		s, _ := New(&checked{API: client, t: t}, Options{Group: g, Stream: "i-2", Interval: time.Hour, MaxQueued: 1000, Log: log})
		for i := range 30 {
			fmt.Fprintf(s, "%073d\n", i)
		}
		s.Close()
		got := read(t, g, "i-2")
		if len(got) != 11 {
			t.Fatalf("%d events arrived, want the report and 10 lines: %q", len(got), got)
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(got[0]), &r); err != nil || r["msg"] != ReportMsg || r["level"] != "WARN" || r["dropped_queue_full"] != 20.0 {
			t.Fatalf("first event %s, want the report of 20 dropped lines (%v)", got[0], err)
		}
		if got[10] != fmt.Sprintf("%073d", 9) {
			t.Fatalf("last line %q, want the tenth written", got[10])
		}
	})

	t.Run("writers never wait for CloudWatch", func(t *testing.T) {
		g := group(t)
		log, _ := quiet(t)
		api := &checked{API: client, t: t, gate: make(chan struct{}), in: make(chan struct{}, 10)}
		s, _ := New(api, Options{Group: g, Stream: "i-3", Interval: time.Millisecond, MaxQueued: 64 << 10, Log: log})
		fmt.Fprintln(s, "first")
		<-api.in // the first batch is on its way and held there
		// Were Write to wait for the held call, this loop would never end
		// and the test would time out.
		for i := range 2000 {
			fmt.Fprintf(s, "%073d\n", i)
		}
		close(api.gate)
		s.Close()
		got := read(t, g, "i-3")
		if len(got) < 2 || got[0] != "first" {
			t.Fatalf("read back %d events starting %q", len(got), got[:min(2, len(got))])
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(got[1]), &r); err != nil || r["msg"] != ReportMsg {
			t.Fatalf("second event %s, want the report (%v)", got[1], err)
		}
		kept := len(got) - 2
		if dropped := int(r["dropped_queue_full"].(float64)); dropped+kept != 2000 || kept == 0 || dropped == 0 {
			t.Fatalf("%d lines kept and %d reported dropped, of 2000", kept, dropped)
		}
	})

	t.Run("a deleted stream is made again", func(t *testing.T) {
		g := group(t)
		log, errs := quiet(t)
		api := &checked{API: client, t: t, sent: make(chan struct{}, 10)}
		s, _ := New(api, Options{Group: g, Stream: "i-4", Interval: time.Millisecond, Log: log})
		fmt.Fprintln(s, "one")
		<-api.sent
		if _, err := client.DeleteLogStream(ctx, &cloudwatchlogs.DeleteLogStreamInput{LogGroupName: aws.String(g), LogStreamName: aws.String("i-4")}); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(s, "two")
		s.Close()
		if got := read(t, g, "i-4"); len(got) != 1 || got[0] != "two" || errs.String() != "" {
			t.Fatalf("read back %q; shipper log %s", got, errs)
		}
	})

	t.Run("throttling is retried by the SDK's retryer", func(t *testing.T) {
		g := group(t)
		// A proxy in front of moto answers the first PutLogEvents the way
		// CloudWatch Logs throttles (HTTP 400, ThrottlingException).
		target, _ := url.Parse(endpoint)
		rp := httputil.NewSingleHostReverseProxy(target)
		var puts atomic.Int64
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".PutLogEvents") && puts.Add(1) == 1 {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/x-amz-json-1.1")
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `{"__type":"ThrottlingException","message":"Rate exceeded"}`)
				return
			}
			rp.ServeHTTP(w, r)
		}))
		defer front.Close()
		throttled := cloudwatchlogs.NewFromConfig(ac, func(o *cloudwatchlogs.Options) { o.BaseEndpoint = aws.String(front.URL) })
		log, errs := quiet(t)
		api := &checked{API: throttled, t: t}
		s, _ := New(api, Options{Group: g, Stream: "i-5", Log: log})
		fmt.Fprintln(s, "slowed down, not lost")
		s.Close()
		if got := read(t, g, "i-5"); len(got) != 1 || got[0] != "slowed down, not lost" || errs.String() != "" {
			t.Fatalf("read back %q; shipper log %s", got, errs)
		}
		if api.calls.Load() != 1 || puts.Load() != 2 {
			t.Fatalf("%d calls by the shipper, %d on the wire; want 1 and 2 (the SDK's retry)", api.calls.Load(), puts.Load())
		}
	})

	t.Run("a failed call is reported and lines are refused after Close", func(t *testing.T) {
		log, errs := quiet(t)
		api := &checked{API: client, t: t, created: make(chan struct{})}
		s, _ := New(api, Options{Group: "/outgate/no-such-group/instance", Stream: "i-6", Interval: time.Millisecond, Log: log})
		fmt.Fprintln(s, "nowhere to go")
		<-api.created // the line's batch fails
		<-api.created // then the batch of the report that says so, once a tick
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(errs.String(), "cannot create the CloudWatch Logs stream") || !strings.Contains(errs.String(), `"lines":1`) {
			t.Fatalf("shipper log %q, want the failed stream creation", errs)
		}
		if _, err := fmt.Fprintln(s, "late"); err == nil {
			t.Fatal("a write after Close was accepted")
		}
	})
}
