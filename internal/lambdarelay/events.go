package lambdarelay

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"

	"github.com/outgate/outgate/internal/apierr"
	"github.com/outgate/outgate/internal/audit"
	"github.com/outgate/outgate/internal/hop"
)

// Function URLs, API Gateway and CloudFront add headers that describe the
// caller (X-Forwarded-For holds its IP, Via the CloudFront hop). Those, and
// what a client wrote in them, are the relay's client headers
// (hop.ClientHeader): forward.Request drops them unless the upstream names
// them in forward_headers, as in `outgate serve`. What is dropped here are
// AWS internals no partner needs whatever the config says.
func stripFrontDoor(h http.Header, sigv4, apiKey bool) {
	h.Del("X-Amz-Cf-Id")
	for k := range h {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "x-amzn-") || strings.HasPrefix(lk, "cloudfront-") {
			delete(h, k)
		}
	}
	if sigv4 {
		// With AuthType AWS_IAM these sign the call to Lambda, not to the partner.
		for _, k := range []string{"Authorization", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-Sha256"} {
			h.Del(k)
		}
	}
	if apiKey {
		// A REST API that requires an API key has checked this one: it is
		// the front door's credential, like Outgate-Key, never the partner's.
		h.Del("X-Api-Key")
	}
}

func decodeBody(body string, b64 bool) ([]byte, error) {
	if !b64 {
		return []byte(body), nil
	}
	return base64.StdEncoding.DecodeString(body)
}

func newRequest(ctx context.Context, method, escapedPath, rawQuery string, h http.Header, body []byte, source string) (*http.Request, error) {
	u := &url.URL{Path: "/", RawQuery: rawQuery}
	if escapedPath != "" {
		p, err := url.PathUnescape(escapedPath)
		if err != nil {
			return nil, err
		}
		u.Path, u.RawPath = p, escapedPath
	}
	r, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	r.RequestURI = u.RequestURI()
	r.Header = h
	r.Host = h.Get("Host")
	r.ContentLength = int64(len(body))
	if len(body) == 0 {
		r.Body = http.NoBody
	}
	r.RemoteAddr = source
	return r, nil
}

func (h *Handler) serveV1(ctx context.Context, e *events.APIGatewayProxyRequest) json.RawMessage {
	hdr := http.Header{}
	if len(e.MultiValueHeaders) > 0 {
		for k, vs := range e.MultiValueHeaders {
			for _, v := range vs {
				hdr.Add(k, v)
			}
		}
	} else {
		for k, v := range e.Headers {
			hdr.Set(k, v)
		}
	}
	q := url.Values{}
	if len(e.MultiValueQueryStringParameters) > 0 {
		for k, vs := range e.MultiValueQueryStringParameters {
			q[k] = append(q[k], vs...)
		}
	} else {
		for k, v := range e.QueryStringParameters {
			q.Set(k, v)
		}
	}
	id := e.RequestContext.Identity
	stripFrontDoor(hdr, id.AccessKey != "", id.APIKey != "" || id.APIKeyID != "")
	status, rh, body := h.serve(ctx, e.HTTPMethod, (&url.URL{Path: e.Path}).EscapedPath(), q.Encode(), hdr, e.Body, e.IsBase64Encoded, e.RequestContext.Identity.SourceIP)
	resp := events.APIGatewayProxyResponse{StatusCode: status, MultiValueHeaders: map[string][]string(rh)}
	resp.Body, resp.IsBase64Encoded = encodeBody(rh, body)
	return h.finish(resp, rh)
}

func (h *Handler) serveV2(ctx context.Context, e *events.APIGatewayV2HTTPRequest) json.RawMessage {
	hdr := http.Header{}
	for k, v := range e.Headers {
		hdr.Set(k, v)
	}
	if len(e.Cookies) > 0 {
		hdr.Set("Cookie", strings.Join(e.Cookies, "; "))
	}
	path := e.RawPath
	// An HTTP API stage other than $default is the first path segment.
	if st := e.RequestContext.Stage; st != "" && st != "$default" && strings.HasPrefix(path, "/"+st+"/") {
		path = path[len(st)+1:]
	}
	sigv4 := e.RequestContext.Authorizer != nil && e.RequestContext.Authorizer.IAM != nil && e.RequestContext.Authorizer.IAM.AccessKey != ""
	stripFrontDoor(hdr, sigv4, false) // HTTP APIs and Function URLs have no API keys
	status, rh, body := h.serve(ctx, e.RequestContext.HTTP.Method, path, e.RawQueryString, hdr, e.Body, e.IsBase64Encoded, e.RequestContext.HTTP.SourceIP)
	resp := events.APIGatewayV2HTTPResponse{StatusCode: status, Headers: map[string]string{}}
	for k, vs := range rh {
		if k == "Set-Cookie" {
			resp.Cookies = append(resp.Cookies, vs...)
			continue
		}
		resp.Headers[k] = strings.Join(vs, ", ")
	}
	resp.Body, resp.IsBase64Encoded = encodeBody(rh, body)
	return h.finish(resp, rh)
}

// finish encodes the response event, or replaces it with a 502 when it
// exceeds Lambda's synchronous limit: a client must never get a truncated body.
func (h *Handler) finish(resp any, rh http.Header) json.RawMessage {
	out, err := json.Marshal(resp)
	if err == nil && len(out) <= MaxResponsePayload {
		return out
	}
	id := rh.Get(hop.RequestIDHeader)
	h.log.Warn("response too large for Lambda's synchronous limit; sent 502 instead", "request_id", id, "limit_bytes", MaxResponsePayload)
	h.requestMetrics(&audit.Record{Decision: audit.Error, Reason: apierr.CodeResponseTooLarge})
	status, eh, body := errorBody(id, apierr.New(http.StatusBadGateway, apierr.CodeResponseTooLarge,
		"the upstream's response is larger than the Lambda payload limit (6 MB)"))
	eh[hop.RequestIDHeader] = []string{id}
	switch resp.(type) {
	case events.APIGatewayProxyResponse:
		out, _ = json.Marshal(events.APIGatewayProxyResponse{StatusCode: status, MultiValueHeaders: eh, Body: string(body)})
	default:
		flat := map[string]string{}
		for k, v := range eh {
			flat[k] = strings.Join(v, ", ")
		}
		out, _ = json.Marshal(events.APIGatewayV2HTTPResponse{StatusCode: status, Headers: flat, Body: string(body)})
	}
	return out
}

// serve runs the relay handler on one request and returns its answer.
func (h *Handler) serve(ctx context.Context, method, path, rawQuery string, hdr http.Header, rawBody string, b64 bool, source string) (int, http.Header, []byte) {
	body, err := decodeBody(rawBody, b64)
	if err != nil {
		return errorBody("", apierr.New(http.StatusBadRequest, apierr.CodeBadRequest, "the event body is not valid base64"))
	}
	req, err := newRequest(ctx, method, path, rawQuery, hdr, body, source)
	if err != nil {
		return errorBody("", apierr.New(http.StatusBadRequest, apierr.CodeBadRequest, "the request path is malformed"))
	}
	rw := newCapture(MaxResponsePayload)
	aborted := func() (aborted bool) {
		defer func() {
			if v := recover(); v != nil {
				if v != http.ErrAbortHandler {
					panic(v)
				}
				aborted = true
			}
		}()
		h.relay.ServeHTTP(rw, req)
		return false
	}()
	id := rw.header.Get(hop.RequestIDHeader)
	switch {
	case aborted:
		status, eh, b := errorBody(id, apierr.New(http.StatusBadGateway, apierr.CodeBadGateway, "the upstream connection broke during the response"))
		eh[hop.RequestIDHeader] = []string{id}
		return status, eh, b
	case rw.overflow:
		return rw.status, rw.header, nil // finish turns an oversized answer into a 502
	}
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	return rw.status, rw.header, rw.body.Bytes()
}

// capture is a ResponseWriter that keeps the response in memory, up to a limit.
type capture struct {
	header   http.Header
	status   int
	body     bytes.Buffer
	limit    int
	overflow bool
}

func newCapture(limit int) *capture { return &capture{header: http.Header{}, limit: limit} }

func (c *capture) Header() http.Header { return c.header }

func (c *capture) WriteHeader(s int) {
	if c.status == 0 {
		c.status = s
	}
}

var errTooLarge = errors.New("response larger than the Lambda payload limit")

func (c *capture) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	if c.body.Len()+len(p) > c.limit {
		c.overflow = true
		return 0, errTooLarge
	}
	return c.body.Write(p)
}

// encodeBody returns the body as text when it is text, base64 otherwise.
func encodeBody(h http.Header, body []byte) (string, bool) {
	if len(body) == 0 {
		return "", false
	}
	if isText(h.Get("Content-Type")) && utf8.Valid(body) {
		return string(body), false
	}
	return base64.StdEncoding.EncodeToString(body), true
}

func isText(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "text/"), strings.HasSuffix(mt, "+json"), strings.HasSuffix(mt, "+xml"):
		return true
	}
	switch mt {
	case "application/json", "application/xml", "application/javascript", "application/x-www-form-urlencoded", "application/problem+json":
		return true
	}
	return false
}
