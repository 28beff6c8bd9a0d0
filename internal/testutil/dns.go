package testutil

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// DNS is a UDP DNS server on loopback that answers A and AAAA queries from a
// function the test sets, so a test can make a name resolve to anything,
// including a different answer on every lookup (DNS rebinding).
type DNS struct {
	Addr string
	mu   sync.Mutex
	// answer maps a lower-case name (no trailing dot) to its addresses.
	answer  map[string]func() []netip.Addr
	queries map[string]int
}

// NewDNS starts a server that lives until the test ends.
func NewDNS(t testing.TB) *DNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &DNS{Addr: pc.LocalAddr().String(), answer: map[string]func() []netip.Addr{}, queries: map[string]int{}}
	t.Cleanup(func() { pc.Close() })
	go d.serve(pc)
	return d
}

// Set makes name resolve to addrs.
func (d *DNS) Set(name string, addrs ...string) {
	list := make([]netip.Addr, len(addrs))
	for i, a := range addrs {
		list[i] = netip.MustParseAddr(a)
	}
	d.SetFunc(name, func() []netip.Addr { return list })
}

// SetFunc makes name resolve to whatever f returns at each query.
func (d *DNS) SetFunc(name string, f func() []netip.Addr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.answer[strings.ToLower(strings.TrimSuffix(name, "."))] = f
}

// Queries reports how many questions were asked about name.
func (d *DNS) Queries(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queries[name]
}

func (d *DNS) serve(pc net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp, ok := d.reply(buf[:n]); ok {
			pc.WriteTo(resp, from)
		}
	}
}

func (d *DNS) reply(req []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(req)
	if err != nil {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	name := strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))
	d.mu.Lock()
	f := d.answer[name]
	d.queries[name]++
	d.mu.Unlock()
	rcode := dnsmessage.RCodeSuccess
	if f == nil {
		rcode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RCode: rcode})
	b.EnableCompression()
	b.StartQuestions()
	b.Question(q)
	b.StartAnswers()
	if f != nil {
		for _, a := range f() {
			rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 0}
			switch {
			case a.Is4() && q.Type == dnsmessage.TypeA:
				b.AResource(rh, dnsmessage.AResource{A: a.As4()})
			case a.Is6() && q.Type == dnsmessage.TypeAAAA:
				b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: a.As16()})
			}
		}
	}
	out, err := b.Finish()
	return out, err == nil
}
