package deploy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/outgate/outgate/internal/stack"
)

type noBackoff struct{}

func (noBackoff) BackoffDelay(int, error) (time.Duration, error) { return 0, nil }

// TestThrottlingIsRetriedOnceOver: a throttled EC2 API (a loopback server
// answering every call RequestLimitExceeded, as EC2 does) sees each call of
// up's guardian pass RetryMaxAttempts times: the SDK's retryer, and no loop
// of outgate's on top multiplying it.
func TestThrottlingIsRetriedOnceOver(t *testing.T) {
	var mu sync.Mutex
	tries := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		mu.Lock()
		tries[form.Get("Action")]++
		mu.Unlock()
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>r</RequestID></Response>`)
	}))
	defer srv.Close()
	retryBackoff = noBackoff{}
	defer func() { retryBackoff = nil }()
	c := NewClients(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")}, true)
	st := &Deployed{Name: "pay", Outputs: map[string]string{stack.OutputSecurityGrp: "sg-1", stack.OutputSubnets: "subnet-1"}}
	if attachNow(context.Background(), c, UpOptions{Name: "pay"}, st, func(string, ...any) {}) {
		t.Fatal("a pass against a throttled API reported the IPs attached")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(tries) == 0 {
		t.Fatal("no EC2 call was made")
	}
	for action, n := range tries {
		if n != RetryMaxAttempts {
			t.Errorf("%s was tried %d times, want the SDK's %d", action, n, RetryMaxAttempts)
		}
	}
}
