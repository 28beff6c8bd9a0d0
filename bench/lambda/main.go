// Command lambda measures outgate's Lambda functions on this machine: the
// size of the deployment zips, the relay's cold start (exec until it asks the
// Runtime API for its first event) and the relay's own work per invocation
// (event handed over until the response is posted, minus the time spent
// waiting on the upstream, as the audit line reports it). It plays the Lambda
// Runtime API itself, on loopback, with a local upstream.
//
//	go run ./bench/lambda            # full run, prints a Markdown table
//	go run ./bench/lambda -short     # a few iterations, for CI
package main

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/outgate/outgate/internal/keys"
)

func main() {
	short := flag.Bool("short", false, "a few iterations only (CI)")
	flag.Parse()
	starts, invokes := 30, 3000
	if *short {
		starts, invokes = 2, 20
	}
	dir, err := os.MkdirTemp("", "outgate-bench-lambda")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	fmt.Printf("# outgate Lambda figures (%s/%s, %d CPUs, %s)\n\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	fmt.Println("| function | GOARCH | bootstrap bytes | zip bytes |")
	fmt.Println("|---|---|---|---|")
	for _, fn := range []string{"outgate-relay", "outgate-guardian"} {
		for _, arch := range []string{"arm64", "amd64"} {
			bin := filepath.Join(dir, fn+"-"+arch)
			build(bin, fn, arch)
			st, _ := os.Stat(bin)
			fmt.Printf("| %s | %s | %d | %d |\n", fn, arch, st.Size(), zipSize(bin))
		}
	}

	native := filepath.Join(dir, "relay-native")
	build(native, "outgate-relay", runtime.GOARCH)
	up := upstream()
	defer up.Close()
	key, hash := keys.New()
	cfg := fmt.Sprintf("upstreams: {partner: {url: %q}}\nclients: [{name: bench, key_sha256: %s, upstreams: [partner], limits: {requests_per_second: 1000000, burst: 1000000}}]\nnetwork: {allow_cidrs: [127.0.0.0/8]}\n", up.URL, hash)
	event, _ := json.Marshal(map[string]any{
		"version": "2.0", "rawPath": "/partner/ping", "rawQueryString": "", "headers": map[string]string{"outgate-key": key, "content-type": "application/json"},
		"requestContext": map[string]any{"http": map[string]any{"method": "POST", "path": "/partner/ping", "sourceIp": "203.0.113.50"}, "stage": "$default"},
		"body":           `{"amount":1000}`, "isBase64Encoded": false,
	})

	var cold []time.Duration
	for i := 0; i < starts; i++ {
		rt := newRuntimeAPI()
		p := rt.start(native, cfg)
		select {
		case <-rt.firstNext:
			cold = append(cold, time.Since(rt.started))
		case <-time.After(10 * time.Second):
			log.Fatalf("the relay did not ask for an event within 10s:\n%s", p.tail())
		}
		p.stop()
		rt.close()
	}

	rt := newRuntimeAPI()
	p := rt.start(native, cfg)
	<-rt.firstNext
	var own, total []time.Duration
	for i := 0; i < invokes; i++ {
		d, resp := rt.invoke(event)
		if !strings.Contains(resp, `"statusCode":200`) {
			log.Fatalf("invocation %d answered %s\n%s", i, resp, p.tail())
		}
		total = append(total, d)
	}
	p.stop()
	rt.close()
	ups := p.upstreamTimes()
	if len(ups) != len(total) {
		log.Fatalf("%d audit lines for %d invocations", len(ups), len(total))
	}
	for i := range total {
		own = append(own, total[i]-ups[i])
	}
	fmt.Printf("\n| measure | n | p50 | p90 | p99 |\n|---|---|---|---|---|\n")
	row("cold start: exec to first event request", cold)
	row("invocation: event handed over to response posted", total)
	row("relay's own work: that minus upstream time", own)
}

func row(name string, ds []time.Duration) {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	q := func(f float64) string { return ds[int(f*float64(len(ds)-1))].Round(time.Microsecond).String() }
	fmt.Printf("| %s | %d | %s | %s | %s |\n", name, len(ds), q(0.5), q(0.9), q(0.99))
}

func build(out, cmd, arch string) {
	c := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-o", out, "./cmd/"+cmd)
	c.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+arch, "CGO_ENABLED=0")
	if b, err := c.CombinedOutput(); err != nil {
		log.Fatalf("building %s for %s: %v\n%s", cmd, arch, err, b)
	}
}

// zipSize is the size of a Lambda deployment zip holding the binary as bootstrap.
func zipSize(bin string) int {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	data, _ := os.ReadFile(bin)
	w, _ := zw.CreateHeader(&zip.FileHeader{Name: "bootstrap", Method: zip.Deflate})
	w.Write(data)
	zw.Close()
	return buf.Len()
}

func upstream() *httpServer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	s := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	})}
	go s.Serve(l)
	return &httpServer{s, "http://" + l.Addr().String()}
}

type httpServer struct {
	*http.Server
	URL string
}

// runtimeAPI plays the Lambda Runtime API for one process.
type runtimeAPI struct {
	srv       *http.Server
	addr      string
	started   time.Time
	firstNext chan struct{}
	once      sync.Once
	events    chan []byte
	responses chan string
	seq       int
}

func newRuntimeAPI() *runtimeAPI {
	rt := &runtimeAPI{firstNext: make(chan struct{}), events: make(chan []byte), responses: make(chan string)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", func(w http.ResponseWriter, r *http.Request) {
		rt.once.Do(func() { close(rt.firstNext) })
		select {
		case ev := <-rt.events:
			rt.seq++
			w.Header().Set("Lambda-Runtime-Aws-Request-Id", fmt.Sprintf("req-%d", rt.seq))
			w.Header().Set("Lambda-Runtime-Deadline-Ms", fmt.Sprint(time.Now().Add(30*time.Second).UnixMilli()))
			w.Header().Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:outgate-relay")
			w.Write(ev)
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusAccepted)
		rt.responses <- string(b)
	})
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusAccepted)
		rt.responses <- "error: " + string(b)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	rt.addr = l.Addr().String()
	rt.srv = &http.Server{Handler: mux}
	go rt.srv.Serve(l)
	return rt
}

func (rt *runtimeAPI) close() { rt.srv.Close() }

func (rt *runtimeAPI) invoke(ev []byte) (time.Duration, string) {
	t0 := time.Now()
	rt.events <- ev
	resp := <-rt.responses
	return time.Since(t0), resp
}

type proc struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	out bytes.Buffer
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// tail is the end of the process output, for error messages.
func (p *proc) tail() string {
	s := p.output()
	return s[max(0, len(s)-2000):]
}

func (rt *runtimeAPI) start(bin, cfg string) *proc {
	p := &proc{cmd: exec.Command(bin)}
	p.cmd.Env = []string{"AWS_LAMBDA_RUNTIME_API=" + rt.addr, "OUTGATE_CONFIG=" + cfg, "AWS_LAMBDA_FUNCTION_NAME=outgate-relay",
		"_HANDLER=bootstrap", "AWS_REGION=us-east-1"}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	rt.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		log.Fatal(err)
	}
	return p
}

func (p *proc) stop() {
	p.cmd.Process.Kill()
	p.cmd.Wait()
}

// upstreamTimes reads upstream_ms from the relay's audit lines, in order.
func (p *proc) upstreamTimes() []time.Duration {
	var out []time.Duration
	sc := bufio.NewScanner(strings.NewReader(p.output()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m struct {
			Msg        string  `json:"msg"`
			UpstreamMs float64 `json:"upstream_ms"`
		}
		if json.Unmarshal(sc.Bytes(), &m) == nil && m.Msg == "request" {
			out = append(out, time.Duration(m.UpstreamMs*float64(time.Millisecond)))
		}
	}
	return out
}
