package upstream

import (
	"net/http"

	"github.com/outgate/outgate/internal/apierr"
	"github.com/outgate/outgate/internal/egress"
)

// RefuseBody returns 400 body_not_allowed for a request that declares a body
// on GET, HEAD, OPTIONS, TRACE or DELETE, unless allowed(method) (an
// upstream's allow_body_on; nil: never). Many partners do not read such a
// body and take it for the next request on the connection, so a client
// could put a whole request of its own there, past outgate's checks.
func RefuseBody(r *http.Request, allowed func(method string) bool) *apierr.E {
	if !egress.UnexpectedBody(r) || (allowed != nil && allowed(r.Method)) {
		return nil
	}
	return apierr.New(http.StatusBadRequest, apierr.CodeBodyNotAllowed, "a "+r.Method+" request may not carry a body here")
}
