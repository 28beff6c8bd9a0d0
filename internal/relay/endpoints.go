package relay

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"

	"github.com/outgate/outgate/internal/apierr"
	"github.com/outgate/outgate/internal/audit"
	"github.com/outgate/outgate/internal/core"
	"github.com/outgate/outgate/internal/upstream"
)

func (h *Handler) endpoint(c *core.Core, w http.ResponseWriter, r *http.Request, rec *audit.Record) {
	switch rec.Path {
	case EndpointPrefix + "health":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			fail(w, rec, apierr.New(http.StatusMethodNotAllowed, apierr.CodeMethodNotAllowed, "use GET"))
			return
		}
		rec.Status = http.StatusOK
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	case EndpointPrefix + "whoami":
		cl, e := authenticate(c, r, rec)
		if e != nil {
			fail(w, rec, e)
			return
		}
		release, e := cl.Admit()
		if e != nil {
			fail(w, rec, e)
			return
		}
		defer release()
		ip, e := EgressIP(r.Context(), c, rec)
		if e != nil {
			fail(w, rec, e)
			return
		}
		rec.Status = http.StatusOK
		writeJSON(w, http.StatusOK, map[string]string{"egress_ip": ip.String(), "checked_via": c.Config.EgressCheckURL})
	default:
		fail(w, rec, apierr.New(http.StatusNotFound, apierr.CodeNotFound, "no such outgate endpoint"))
	}
}

// EgressIP asks egress_check_url, through the same way out as client
// traffic, which address the gateway's calls leave from. The answer may be
// a plain-text IP or JSON with an "ip" field.
func EgressIP(ctx context.Context, c *core.Core, rec *audit.Record) (netip.Addr, *apierr.E) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Config.EgressCheckURL, nil)
	if err != nil {
		return netip.Addr{}, apierr.New(http.StatusInternalServerError, apierr.CodeBadGateway, "bad egress_check_url")
	}
	req.Header.Set("User-Agent", "outgate")
	rw := &upstream.Recorder{}
	sub := &audit.Record{}
	if e := doCaptured(rw, req, c, sub); e != nil {
		rec.Detail, rec.Decision = sub.Detail, sub.Decision
		return netip.Addr{}, e
	}
	if rw.Status != http.StatusOK {
		rec.Detail, rec.Decision = "egress check answered "+http.StatusText(rw.Status), audit.Error
		return netip.Addr{}, apierr.New(http.StatusBadGateway, apierr.CodeBadGateway, "the egress check service did not answer 200")
	}
	// The start of a larger answer is not the answer: "203.0.113.10"
	// followed by 4 KiB of anything else is no address.
	ip, ok := parseIP(rw.Body())
	if rw.Cut() {
		ok = false
	}
	if !ok {
		rec.Detail, rec.Decision = "egress check answer is not an IP", audit.Error
		return netip.Addr{}, apierr.New(http.StatusBadGateway, apierr.CodeBadGateway, "the egress check service did not return an IP address")
	}
	return ip, nil
}

// doCaptured runs upstream.Do into rw. A body that breaks midway makes Do
// abort the handler (right for a client's stream); here the answer is just
// unusable, so it becomes an error instead of a panic in the caller.
func doCaptured(rw *upstream.Recorder, req *http.Request, c *core.Core, sub *audit.Record) (e *apierr.E) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				panic(v)
			}
			sub.Decision = audit.Error
			e = apierr.New(http.StatusBadGateway, apierr.CodeBadGateway, "the egress check answer broke off")
		}
	}()
	return upstream.Do(rw, req, c.Egress, c.Timeouts(0), sub)
}

func parseIP(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if ip, err := netip.ParseAddr(s); err == nil {
		return ip.Unmap(), true
	}
	var j struct {
		IP string `json:"ip"`
	}
	if json.Unmarshal([]byte(s), &j) == nil {
		if ip, err := netip.ParseAddr(strings.TrimSpace(j.IP)); err == nil {
			return ip.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
