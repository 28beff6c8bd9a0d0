// Command bench measures outgate beside squid and tinyproxy on this machine,
// in one run, on loopback only: requests/s at saturation, latency at a fixed
// rate, CONNECT bulk throughput, new-tunnel rate, memory per idle tunnel and
// the most concurrent tunnels held with zero errors.
//
//	go run ./bench            # full run; prints a table, writes bench/results/*.json
//	go run ./bench -short     # every path once, briefly (CI), no thresholds
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
}

func main() {
	short := flag.Bool("short", false, "run every path briefly (CI)")
	origin := flag.String("serve-origin", "", "internal: run the origin server on this directory")
	flag.Parse()
	if *origin != "" {
		serveOrigin(*origin)
		return
	}
	s := settings{dur: 5 * time.Second, conns: 32, bulkBytes: 512 << 20, idle: 1000, maxTun: 10000}
	if *short {
		s = settings{dur: 300 * time.Millisecond, conns: 4, bulkBytes: 4 << 20, idle: 50, maxTun: 100}
	}
	raiseNoFile()
	work, err := os.MkdirTemp("", "outgate-bench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	env := setup(work, s)
	defer env.stop()

	r := run(env, s)
	r.Machine = fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	r.Command = "go run ./bench" + map[bool]string{true: " -short", false: ""}[*short]
	r.Time = time.Now().UTC().Format(time.RFC3339)
	table := r.markdown()
	fmt.Print(table)
	if !*short {
		name := filepath.Join("bench", "results", time.Now().UTC().Format("20060102-150405")+".json")
		data, _ := json.MarshalIndent(r, "", "  ")
		if err := os.WriteFile(name, data, 0o644); err != nil {
			log.Printf("writing %s: %v", name, err)
		} else {
			fmt.Println("\nwrote", name)
		}
	}
	if len(r.Errors) > 0 {
		fmt.Println("\nerrors:\n  " + strings.Join(r.Errors, "\n  "))
	}
}
