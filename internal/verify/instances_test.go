package verify

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// ca issues server certificates for the fake instances and the echo service.
type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t *testing.T) *ca {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &ca{cert, key, pool}
}

func (c *ca) issue(t *testing.T, names ...string) tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tpl.IPAddresses = append(tpl.IPAddresses, ip)
		} else {
			tpl.DNSNames = append(tpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// fakeInstance is one instance's listener on loopback: TLS, the relay's
// whoami and the proxy's CONNECT (to the echo service, whatever the
// target), each reporting the egress IP the test gives it.
type fakeInstance struct {
	addr                   string
	relayEgress, proxyEcho string
	client, key            string
	echoAddr               string
}

func startInstance(t *testing.T, cert tls.Certificate, f *fakeInstance) {
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	f.addr = l.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodConnect {
			want := "Basic " + base64.StdEncoding.EncodeToString([]byte(f.client+":"+f.key))
			if r.Header.Get("Proxy-Authorization") != want {
				http.Error(w, "no", http.StatusProxyAuthRequired)
				return
			}
			up, err := net.Dial("tcp", f.echoAddr)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			w.WriteHeader(http.StatusOK)
			conn, rw, _ := w.(http.Hijacker).Hijack()
			go func() { io.Copy(up, rw); up.Close() }()
			io.Copy(conn, up)
			conn.Close()
			return
		}
		if r.URL.Path == "/_outgate/whoami" && r.Header.Get("Outgate-Key") == f.key {
			json.NewEncoder(w).Encode(map[string]string{"egress_ip": f.relayEgress})
			return
		}
		http.Error(w, "unauthorized", http.StatusUnauthorized)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// startEcho answers every request with the IP the proxy path gives it.
func startEcho(t *testing.T, cert tls.Certificate, answer func() string) string {
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				body := answer()
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
			}()
		}
	}()
	return l.Addr().String()
}

// Two instances at TEST-NET addresses, reached on loopback through the
// dial hook: each must prove its own IP through both its relay and its
// proxy; one whose proxy path leaves from another address fails, named.
func TestInstances(t *testing.T) {
	authority := newCA(t)
	ip1, ip2 := "203.0.113.10", "203.0.113.11"
	insts := map[string]*fakeInstance{
		ip1: {relayEgress: ip1, client: "billing", key: "og_k"},
		ip2: {relayEgress: ip2, client: "billing", key: "og_k"},
	}
	// The echo service sees the egress of whichever instance tunnels to
	// it: each instance gets an echo of its own.
	for ip, f := range insts {
		answer := ip
		f.echoAddr = startEcho(t, authority.issue(t, "echo.example"), func() string { return answer })
		startInstance(t, authority.issue(t, "gw.example.com", ip1, ip2), f)
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		f, ok := insts[host]
		if !ok {
			return nil, fmt.Errorf("the test dials only the instances, not %s", addr)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, f.addr)
	}
	target := InstanceTarget{Host: "gw.example.com", Roots: authority.pool, Client: "billing", Key: "og_k", CheckURL: "https://echo.example/", Dial: dial}
	checks, err := Instances(context.Background(), target, []string{ip1, ip2})
	if err != nil || len(checks) != 2 || !checks[0].OK || !checks[1].OK || checks[0].ProxyEgress != ip1 || checks[1].RelayEgress != ip2 {
		t.Fatalf("both good: %v %+v", err, checks)
	}
	// By IP (the deployment's own CA certifies the IPs): the same.
	target.Host = ""
	if _, err := Instances(context.Background(), target, []string{ip1, ip2}); err != nil {
		t.Fatalf("by IP: %v", err)
	}
	target.Host = "gw.example.com"

	// ip2's calls through the proxy leave from elsewhere: named, and ip1
	// still checked.
	insts[ip2].echoAddr = startEcho(t, authority.issue(t, "echo.example"), func() string { return "198.51.100.7" })
	checks, err = Instances(context.Background(), target, []string{ip1, ip2})
	if err == nil || !checks[0].OK || checks[1].OK || !strings.Contains(checks[1].Problem, "proxy: calls leave from 198.51.100.7") {
		t.Errorf("wrong proxy egress: %v %+v", err, checks)
	}
	// A certificate the roots do not trust is a failure, not skipped.
	target.Roots = x509.NewCertPool()
	checks, err = Instances(context.Background(), target, []string{ip1})
	if err == nil || checks[0].OK || !strings.Contains(checks[0].Problem, "certificate") {
		t.Errorf("untrusted certificate: %v %+v", err, checks)
	}
	target.Roots = authority.pool
	// A wrong key: the relay says 401, the proxy 407; both named.
	target.Key = "og_wrong"
	checks, _ = Instances(context.Background(), target, []string{ip1})
	if !strings.Contains(checks[0].Problem, "relay: answered 401") || !strings.Contains(checks[0].Problem, "may not reach") {
		t.Errorf("wrong key: %+v", checks)
	}
	if _, err := Instances(context.Background(), InstanceTarget{Key: "k"}, []string{ip1}); err == nil || !strings.Contains(err.Error(), "--client") {
		t.Errorf("no client: %v", err)
	}
}

func TestParseIP(t *testing.T) {
	for in, want := range map[string]string{"203.0.113.9\n": "203.0.113.9", `{"ip":"198.51.100.1"}`: "198.51.100.1", "::ffff:203.0.113.9": "203.0.113.9"} {
		if a, ok := parseIP([]byte(in)); !ok || a.String() != want {
			t.Errorf("%q: %v %v", in, a, ok)
		}
	}
	if _, ok := parseIP([]byte("<html>")); ok {
		t.Error("html parsed as an IP")
	}
}
