// Package hop removes the headers that must not cross the gateway: the
// hop-by-hop set of RFC 9110 section 7.6.1, every header the Connection header
// names, and the gateway's own credentials.
package hop

import (
	"net/http"
	"net/textproto"
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

// Credential headers of outgate itself; they must never reach a partner.
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

// StripRequest is Strip plus outgate's own headers, for requests going upstream.
func StripRequest(h http.Header) {
	Strip(h)
	delete(h, KeyHeader)
	delete(h, RequestIDHeader)
}
