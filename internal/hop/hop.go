// Package hop removes the headers that must not cross the gateway: the
// hop-by-hop set of RFC 9110 section 7.6.1, every header the Connection header
// names, outgate's own (Outgate-*) in both directions, and the headers that
// describe the client to a partner unless an upstream asks for them.
package hop

import (
	"net/http"
	"net/textproto"
	"slices"
	"strings"
)

// byHop are hop-by-hop headers in canonical form.
var byHop = []string{
	"Connection",
	"Proxy-Connection", // non-standard, still sent by some clients
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

// Headers of outgate itself (see OwnPrefix); they must never reach a partner.
const (
	KeyHeader       = "Outgate-Key"
	RequestIDHeader = "Outgate-Request-Id"
)

// Strip deletes hop-by-hop headers and those named in Connection from h.
func Strip(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	// byHop is in canonical form already: delete skips Del's
	// canonicalisation, which was a percent of a proxied request's CPU.
	for _, name := range byHop {
		delete(h, name)
	}
}

// OwnPrefix starts the name of every header that is outgate's: its key and
// request id going in, its error code coming out. A client's Outgate-* header
// never reaches a partner, and a partner's never reaches the client, where it
// would pass for the gateway's own (a forged Outgate-Error, a request id that
// points at someone else's audit line).
const OwnPrefix = "Outgate-"

// clientHeaders describe the client, or a hop in front of outgate, to the
// partner: its address (which a partner may trust for allowlisting, as it
// trusts outgate's static IP), the host and scheme it used, the proxies on
// the way, or API Gateway's API key. Outgate adds nothing about its client,
// and by default it does not pass on what the client wrote there either.
// Every name whose prefix is X-Forwarded- is one of them too. So are
// X-Original-Url and X-Rewrite-Url: IIS's URL Rewrite and older Symfony and
// Zend set-ups take the request's path from them, which would let a client
// name a path outside the upstream's base path that the relay's path rule
// never saw.
var clientHeaders = map[string]bool{
	"Forwarded":                true,
	"Via":                      true,
	"X-Real-Ip":                true,
	"True-Client-Ip":           true,
	"X-Client-Ip":              true,
	"X-Cluster-Client-Ip":      true,
	"Cf-Connecting-Ip":         true,
	"Fastly-Client-Ip":         true,
	"X-Original-Forwarded-For": true,
	"X-Originating-Ip":         true,
	"X-Api-Key":                true,
	"X-Original-Url":           true,
	"X-Rewrite-Url":            true,
}

const forwardedPrefix = "X-Forwarded-"

// ClientHeader reports whether name (any case, '_' or '-') is one of the
// headers that describe the client, which outgate drops unless an upstream
// forwards it.
func ClientHeader(name string) bool {
	name = AsPartnerReads(name)
	return clientHeaders[name] || len(name) > len(forwardedPrefix) && strings.HasPrefix(name, forwardedPrefix)
}

// AsPartnerReads is the canonical, dashed spelling of a header name: the one
// header a partner takes name for, whatever its case and '_' (see dashed).
func AsPartnerReads(name string) string {
	return textproto.CanonicalMIMEHeaderKey(dashed(name))
}

// ClientHeaderNames lists the names ClientHeader covers, for messages:
// every X-Forwarded-* header, then the others in order.
func ClientHeaderNames() []string {
	names := []string{forwardedPrefix + "*"}
	for n := range clientHeaders {
		names = append(names, n)
	}
	slices.Sort(names[1:])
	return names
}

// dashed spells name with '-' for every '_'. CGI, PHP, and WSGI and Rack
// servers hand headers to applications as variables named by upper-casing
// and replacing '-' with '_', so X_Forwarded_For arrives as the same
// HTTP_X_FORWARDED_FOR as X-Forwarded-For (nginx and Apache drop such names
// by default; Python's wsgiref, older gunicorn and uWSGI do not): to a
// partner, the two are one header.
func dashed(name string) string {
	if strings.IndexByte(name, '_') < 0 {
		return name
	}
	return strings.ReplaceAll(name, "_", "-")
}

// StripRequest is Strip plus outgate's own headers and the client headers
// (ClientHeader) other than those in keep (canonical names), for requests
// going upstream.
func StripRequest(h http.Header, keep []string) {
	Strip(h)
	for k := range h {
		if ownHeader(k) || (clientHeaders[k] || ClientHeader(k)) && !kept(k, keep) {
			delete(h, k)
		}
	}
}

// StripResponse is Strip plus outgate's own headers, for a partner's
// response headers or trailers before they are copied to the client.
func StripResponse(h http.Header) {
	Strip(h)
	for k := range h {
		if ownHeader(k) {
			delete(h, k)
		}
	}
}

// ownHeader reports an Outgate-* name, in any case and with '_' for '-'
// (see dashed).
func ownHeader(k string) bool {
	return hasPrefixFold(k, OwnPrefix) || hasPrefixFold(k, "Outgate_")
}

func kept(k string, keep []string) bool {
	for _, name := range keep {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// hasPrefixFold is strings.HasPrefix ignoring ASCII case: a header map built
// by hand (the Lambda adapter, a lower-cased Idempotency-Key) need not hold
// canonical names.
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
