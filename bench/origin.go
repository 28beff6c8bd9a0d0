package main

import (
	"crypto/tls"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// serveOrigin runs in a child process: a plain and a TLS HTTP server, and a
// TCP echo server, writing their addresses and the TLS CA into dir.
func serveOrigin(dir string) {
	mux := http.NewServeMux()
	small := []byte(`{"status":"ok","id":"b1b0712","amount":1000}`)
	mux.HandleFunc("/ping", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(small)
	})
	zeros := make([]byte, 256<<10)
	mux.HandleFunc("/bulk", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		for n > 0 {
			k := min(n, int64(len(zeros)))
			if _, err := w.Write(zeros[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	plain := httptest.NewUnstartedServer(mux)
	plain.Start()
	tlsSrv := httptest.NewUnstartedServer(mux)
	certPEM, keyPEM := selfSigned()
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		log.Fatal(err)
	}
	tlsSrv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	tlsSrv.StartTLS()
	// Several echo ports: a proxy holding 10,000 tunnels opens 10,000
	// connections to them, and the ephemeral ports towards one address:port
	// run short once earlier phases leave sockets in TIME_WAIT.
	var echoAddrs []string
	for i := 0; i < 4; i++ {
		echo, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		echoAddrs = append(echoAddrs, echo.Addr().String())
		go serveEcho(echo)
	}
	os.WriteFile(filepath.Join(dir, "origin-ca.pem"), certPEM, 0o600)
	addrs := plain.Listener.Addr().String() + " " + tlsSrv.Listener.Addr().String() + " " + strings.Join(echoAddrs, ",")
	os.WriteFile(filepath.Join(dir, "origin.addrs.tmp"), []byte(addrs), 0o600)
	os.Rename(filepath.Join(dir, "origin.addrs.tmp"), filepath.Join(dir, "origin.addrs"))
	select {}
}

func serveEcho(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		// A plain loop, not io.Copy: TCP-to-TCP io.Copy splices through a
		// pipe, two more descriptors per idle connection.
		go func() {
			defer c.Close()
			buf := make([]byte, 512)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}
