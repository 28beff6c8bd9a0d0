package proxy

import (
	"net/http"
	"strings"

	"github.com/outgate/outgate/internal/apierr"
	"github.com/outgate/outgate/internal/core"
	"github.com/outgate/outgate/internal/hostname"
	"github.com/outgate/outgate/internal/inject"
	"github.com/outgate/outgate/internal/relay"
)

// partnerCreds finds the credentials an absolute-form proxy request gets:
// those of an upstream the client may use whose URL has the same scheme,
// host and port and whose base path holds the request's path (the longest
// such base path, if several do). The relay's path rule applies to such a
// request (no dot segment in any spelling), or a client could aim the
// credentials at a path outside the base path. A request to anywhere else
// gets none, and CONNECT never does: the gateway cannot see inside the
// client's TLS.
func partnerCreds(c *core.Core, cl *core.Client, scheme, host string, port uint16, escapedPath string) (*inject.Upstream, *apierr.E) {
	if c.Creds == nil {
		return nil, nil
	}
	var best *inject.Upstream
	bestLen := -1
	for _, name := range cl.Upstreams {
		creds := c.Creds.For(name)
		if creds == nil {
			continue
		}
		u := c.Config.Upstreams[name].Parsed
		def := map[string]uint16{"http": 80, "https": 443}[u.Scheme]
		uh, up, err := hostname.SplitTarget(u.Host, def)
		if err != nil || u.Scheme != scheme || uh != host || up != port {
			continue
		}
		if _, _, err := relay.SplitPath("/_" + escapedPath); err != nil {
			return nil, apierr.New(http.StatusBadRequest, apierr.CodeBadRequest, "a request to upstream "+name+"'s partner: "+err.Error())
		}
		base := u.EscapedPath()
		if (escapedPath == base || base == "" || strings.HasPrefix(escapedPath, base+"/")) && len(base) > bestLen {
			best, bestLen = creds, len(base)
		}
	}
	return best, nil
}
