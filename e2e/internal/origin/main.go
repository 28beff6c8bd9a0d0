// Command origin is a partner for load tests that need more connections
// than a race-instrumented test process may hold goroutines for (8,128): it
// answers every request with "ok", after the ?delay= given, and prints its
// address on stdout.
package main

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(l.Addr().String())
	os.Stdout.Sync()
	log.Fatal(http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if d, err := time.ParseDuration(r.URL.Query().Get("delay")); err == nil {
			time.Sleep(min(d, time.Minute))
		}
		io.WriteString(w, "ok")
	})))
}
