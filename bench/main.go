// Command bench measures outgate beside squid and tinyproxy on this machine,
// in one run, on loopback only: requests/s at saturation, latency at a fixed
// rate, CONNECT bulk throughput, new-tunnel rate, memory per idle tunnel and
// the most concurrent tunnels held with zero errors.
//
//	go run ./bench            # full run; prints a table, writes bench/results/*.json
//	go run ./bench -short     # every path once, briefly (CI), no thresholds
//	go run ./bench -soak 10m  # outgate alone at 80% of saturation: errors, memory, descriptors
//
// squid and tinyproxy are started in the foreground when installed
// (apt-get install squid tinyproxy) and skipped, with a note, when not.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

type settings struct {
	dur       time.Duration // per saturation / latency measurement
	conns     int           // keep-alive connections at saturation
	bulkBytes int64
	idle      int // idle tunnels for the RSS figure
	maxTun    int // concurrent tunnels to hold
	noPeers   bool
	only      map[string]bool // paths to run (and "tunnels"); empty: all
	ogEnv     []string        // extra environment for the outgate process
	rate      float64         // fixed request rate for the latency figures; 0: half of saturation
}

// wants reports whether the run includes name.
func (s settings) wants(name string) bool { return len(s.only) == 0 || s.only[name] }

func main() {
	short := flag.Bool("short", false, "run every path briefly (CI)")
	soakFor := flag.Duration("soak", 0, "instead of the comparison, run outgate alone at 80% of its saturation for this long")
	origin := flag.String("serve-origin", "", "internal: run the origin server on this directory")
	only := flag.String("only", "", "for experiments: run only these comma-separated paths (direct, relay, relay-post, relay-https, proxy-http, direct-tls, connect, tunnels)")
	rate := flag.Float64("rate", 0, "measure latency at this many requests/s on every path, instead of at half of outgate's saturation")
	var ogEnv envList
	flag.Var(&ogEnv, "outgate-env", "for experiments: KEY=VALUE added to outgate's environment (repeatable), e.g. GOGC=400")
	flag.Parse()
	if *origin != "" {
		serveOrigin(*origin)
		return
	}
	s := settings{dur: 5 * time.Second, conns: 32, bulkBytes: 512 << 20, idle: 1000, maxTun: 10000}
	if *short {
		s = settings{dur: 300 * time.Millisecond, conns: 4, bulkBytes: 4 << 20, idle: 50, maxTun: 100}
	}
	s.noPeers = *soakFor > 0
	s.ogEnv = ogEnv
	s.rate = *rate
	if *only != "" {
		s.only = map[string]bool{}
		for _, p := range strings.Split(*only, ",") {
			s.only[strings.TrimSpace(p)] = true
		}
	}
	raiseNoFile()
	work, err := os.MkdirTemp("", "outgate-bench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	env := setup(work, s)
	defer env.stop()

	machine := fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	now := time.Now().UTC()
	if *soakFor > 0 {
		r := soak(env, s, *soakFor, max(*soakFor/20, time.Second))
		r.Machine, r.Time, r.Command = machine, now.Format(time.RFC3339), "go run ./bench -soak "+soakFor.String()
		fmt.Print(r.markdown())
		save(r, "soak-"+now.Format("20060102-150405"))
		if r.Errors > 0 {
			os.Exit(1)
		}
		return
	}
	r := run(env, s)
	r.Machine, r.Time = machine, now.Format(time.RFC3339)
	r.Command = "go run ./bench" + map[bool]string{true: " -short", false: ""}[*short]
	if *only != "" {
		r.Command += " -only " + *only
	}
	if *rate > 0 {
		r.Command += fmt.Sprintf(" -rate %g", *rate)
	}
	for _, v := range ogEnv {
		r.Command += " -outgate-env " + v
	}
	fmt.Print(r.markdown())
	if *short {
		// The soak's code path too, so it cannot rot.
		sk := soak(env, s, 2*time.Second, time.Second)
		fmt.Printf("\nsoak (short): %d requests, %d errors\n", sk.Requests, sk.Errors)
		if sk.Errors > 0 {
			r.Errors = append(r.Errors, fmt.Sprintf("soak: %d errors", sk.Errors))
		}
	} else {
		save(r, now.Format("20060102-150405"))
	}
	if len(r.Errors) > 0 {
		fmt.Println("\nerrors:\n  " + strings.Join(r.Errors, "\n  "))
	}
}

type envList []string

func (e *envList) String() string { return strings.Join(*e, " ") }
func (e *envList) Set(v string) error {
	if !strings.Contains(v, "=") {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	*e = append(*e, v)
	return nil
}

func save(v any, base string) {
	name := filepath.Join("bench", "results", base+".json")
	data, _ := json.MarshalIndent(v, "", "  ")
	if err := os.WriteFile(name, data, 0o644); err != nil {
		log.Printf("writing %s: %v", name, err)
		return
	}
	fmt.Println("\nwrote", name)
}
