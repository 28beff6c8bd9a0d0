package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/outgate/outgate/internal/keys"
)

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// selfSigned makes a certificate for 127.0.0.1 that is its own root, with
// an ECDSA P-256 key (what a current ACME client gets; an RSA key would make
// every handshake several times dearer), in PEM.
func selfSigned() (certPEM, keyPEM []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "outgate bench"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		log.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		log.Fatal(err)
	}
	return pemCert(der), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// peer is one proxy under test.
type peer struct {
	name      string
	proxyAddr string // forward proxy (absolute-form + CONNECT)
	user      string // proxy credentials, if any
	pass      string
	cmd       *exec.Cmd
}

type environment struct {
	work                        string
	originHTTP, originTLS, echo string
	echoes                      []string // every echo port (echo is the first)
	tlsConf                     *tls.Config
	outgate                     *peer
	relayAddr, relayKey         string
	relayTLSAddr                string    // the second outgate's relay listener, over TLS
	outgateTLS                  *exec.Cmd // that outgate
	adminAddr                   string    // outgate's /metrics
	peers                       []*peer   // outgate first, then squid, tinyproxy when installed
	notes                       []string
	procs                       []*exec.Cmd
}

func (e *environment) stop() {
	for _, p := range e.procs {
		p.Process.Kill()
		p.Wait()
	}
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitListen(addr string) {
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	log.Fatalf("nothing listens on %s", addr)
}

func start(e *environment, name string, args []string, out io.Writer, env ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		log.Fatalf("starting %s: %v", name, err)
	}
	e.procs = append(e.procs, cmd)
	return cmd
}

func setup(work string, s settings) *environment {
	e := &environment{work: work}
	self, _ := os.Executable()
	start(e, self, []string{"-serve-origin", work}, os.Stderr)
	var addrs []string
	for i := 0; i < 400; i++ {
		if b, err := os.ReadFile(filepath.Join(work, "origin.addrs")); err == nil {
			addrs = strings.Fields(string(b))
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	if len(addrs) != 3 {
		log.Fatal("the origin did not start")
	}
	e.originHTTP, e.originTLS, e.echoes = addrs[0], addrs[1], strings.Split(addrs[2], ",")
	e.echo = e.echoes[0]
	ca, _ := os.ReadFile(filepath.Join(work, "origin-ca.pem"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	e.tlsConf = &tls.Config{RootCAs: pool}

	// outgate, built from this checkout.
	bin := filepath.Join(work, "outgate")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/outgate").CombinedOutput(); err != nil {
		log.Fatalf("building outgate (run from the repository root): %v\n%s", err, out)
	}
	key, hash := keys.New()
	e.relayKey = key
	e.relayAddr = freeAddr()
	proxy := freeAddr()
	e.adminAddr = freeAddr()
	body := fmt.Sprintf(`
upstreams: {origin: {url: "http://%s"}, origin-tls: {url: "https://%s"}}
clients:
  - name: bench
    key_sha256: %s
    upstreams: [origin, origin-tls]
    hosts: ["%s", "%s", "%s"]
    raw_tunnels: ["%s"]
network: {allow_cidrs: [127.0.0.0/8], ca_files: [%s]}
limits: {requests_per_second: 1000000, burst: 1000000, max_concurrent: 1000000, max_tunnels: 1000000, tunnel_idle_timeout: 10m}
log: {level: warn}
`, e.originHTTP, e.originTLS, hash, e.originHTTP, e.originTLS, strings.Join(e.echoes, `", "`), strings.Join(e.echoes, `", "`), filepath.Join(work, "origin-ca.pem"))
	cfg := fmt.Sprintf("listen: %s\nproxy_listen: %s\nadmin_listen: %s\n", e.relayAddr, proxy, e.adminAddr) + body
	cfgPath := filepath.Join(work, "outgate.yaml")
	os.WriteFile(cfgPath, []byte(cfg), 0o600)
	og := &peer{name: "outgate", proxyAddr: proxy, user: "bench", pass: key}
	og.cmd = start(e, bin, []string{"serve", "--config", cfgPath}, nil, s.ogEnv...) // /dev/null, as squid logs nowhere
	waitListen(proxy)
	waitListen(e.relayAddr)
	e.outgate = og
	e.peers = append(e.peers, og)
	if s.noPeers {
		return e
	}

	// A second outgate whose relay listener speaks TLS, as one on a VM
	// serving functions across the Internet must.
	certPEM, keyPEM := selfSigned()
	e.tlsConf.RootCAs.AppendCertsFromPEM(certPEM)
	certFile, keyFile := filepath.Join(work, "relay-cert.pem"), filepath.Join(work, "relay-key.pem")
	os.WriteFile(certFile, certPEM, 0o600)
	os.WriteFile(keyFile, keyPEM, 0o600)
	e.relayTLSAddr = freeAddr()
	tlsCfg := filepath.Join(work, "outgate-tls.yaml")
	os.WriteFile(tlsCfg, []byte(fmt.Sprintf("listen: %s\ntls: {cert_file: %s, key_file: %s}\n", e.relayTLSAddr, certFile, keyFile)+body), 0o600)
	e.outgateTLS = start(e, bin, []string{"serve", "--config", tlsCfg}, nil, s.ogEnv...)
	waitListen(e.relayTLSAddr)

	if p := startSquid(e, s); p != nil {
		e.peers = append(e.peers, p)
	}
	if p := startTinyproxy(e, s); p != nil {
		e.peers = append(e.peers, p)
	}
	return e
}

func startSquid(e *environment, s settings) *peer {
	bin, err := exec.LookPath("squid")
	if err != nil {
		e.notes = append(e.notes, "squid is not installed (apt-get install squid): skipped")
		return nil
	}
	addr := freeAddr()
	_, port, _ := net.SplitHostPort(addr)
	dir := filepath.Join(e.work, "squid")
	os.MkdirAll(dir, 0o777)
	os.Chmod(dir, 0o777)
	conf := filepath.Join(dir, "squid.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`http_port 127.0.0.1:%s
acl localnet src 127.0.0.0/8
acl SSL_ports port 1-65535
acl CONNECT method CONNECT
http_access allow localnet
http_access deny all
cache deny all
cache_mem 8 MB
access_log none
cache_log %s/cache.log
pid_filename %s/squid.pid
coredump_dir %s
max_filedescriptors 65536
shutdown_lifetime 1 seconds
workers 1
`, port, dir, dir, dir)), 0o644)
	cmd := start(e, bin, []string{"-N", "-f", conf}, nil)
	waitListen(addr)
	return &peer{name: "squid", proxyAddr: addr, cmd: cmd}
}

func startTinyproxy(e *environment, s settings) *peer {
	bin, err := exec.LookPath("tinyproxy")
	if err != nil {
		e.notes = append(e.notes, "tinyproxy is not installed (apt-get install tinyproxy): skipped")
		return nil
	}
	addr := freeAddr()
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(e.work, "tinyproxy.conf")
	var connectPorts []string
	for _, a := range append([]string{e.originTLS, e.originHTTP}, e.echoes...) {
		_, p, _ := net.SplitHostPort(a)
		connectPorts = append(connectPorts, "ConnectPort "+p)
	}
	os.WriteFile(conf, []byte(fmt.Sprintf(`Port %s
Listen 127.0.0.1
Timeout 600
MaxClients %d
Allow 127.0.0.1
LogLevel Critical
%s
`, port, max(1000, s.maxTun+100), strings.Join(connectPorts, "\n"))), 0o644)
	cmd := start(e, bin, []string{"-d", "-c", conf}, nil)
	waitListen(addr)
	return &peer{name: "tinyproxy", proxyAddr: addr, cmd: cmd}
}
