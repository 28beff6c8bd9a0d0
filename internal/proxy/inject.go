package proxy

import (
	"net/http"

	"github.com/outgate/outgate/internal/apierr"
	"github.com/outgate/outgate/internal/core"
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
func partnerCreds(c *core.Core, cl *core.Client, origin, escapedPath string) (*inject.Upstream, *apierr.E) {
	if c.Creds == nil {
		return nil, nil
	}
	usable := func(name string) bool { return c.Creds.For(name) != nil && cl.MayUseUpstream(name) }
	if name, ok := c.AtOrigin(origin, usable); ok {
		if _, _, err := relay.SplitPath("/_" + escapedPath); err != nil {
			return nil, apierr.New(http.StatusBadRequest, apierr.CodeBadRequest, "a request to upstream "+name+"'s partner: "+err.Error())
		}
	}
	name, ok := c.ProxyUpstream(origin, escapedPath, usable)
	if !ok {
		return nil, nil
	}
	return c.Creds.For(name), nil
}
