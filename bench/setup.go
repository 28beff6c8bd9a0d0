package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log"
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
	adminAddr                   string  // outgate's /metrics
	peers                       []*peer // outgate first, then squid, tinyproxy when installed
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
	cfg := fmt.Sprintf(`
listen: %s
proxy_listen: %s
admin_listen: %s
upstreams: {origin: {url: "http://%s"}, origin-tls: {url: "https://%s"}}
clients:
  - name: bench
    key_sha256: %s
    upstreams: [origin, origin-tls]
    hosts: ["%s", "%s", "%s"]
network: {allow_cidrs: [127.0.0.0/8], ca_files: [%s]}
limits: {requests_per_second: 1000000, burst: 1000000, max_concurrent: 1000000, max_tunnels: 1000000, tunnel_idle_timeout: 10m}
log: {level: warn}
`, e.relayAddr, proxy, e.adminAddr, e.originHTTP, e.originTLS, hash, e.originHTTP, e.originTLS, strings.Join(e.echoes, `", "`), filepath.Join(work, "origin-ca.pem"))
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
