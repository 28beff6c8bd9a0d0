package lambdarelay

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/outgate/outgate/internal/apierr"
)

// Function URLs, API Gateway and CloudFront add headers that describe the
// caller (X-Forwarded-For holds its IP, Via the CloudFront hop). Those, and
// what a client wrote in them, are the relay's client headers
// (hop.ClientHeader): upstream.Request drops them unless the upstream names
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
	return h.serve(ctx, v1Envelope, e.HTTPMethod, (&url.URL{Path: e.Path}).EscapedPath(), q.Encode(), hdr, e.Body, e.IsBase64Encoded, e.RequestContext.Identity.SourceIP)
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
	return h.serve(ctx, v2Envelope, e.RequestContext.HTTP.Method, path, e.RawQueryString, hdr, e.Body, e.IsBase64Encoded, e.RequestContext.HTTP.SourceIP)
}

// serve runs the relay handler on one request and returns the response
// event, encoded, within Lambda's payload limit.
func (h *Handler) serve(ctx context.Context, wrap envelope, method, path, rawQuery string, hdr http.Header, rawBody string, b64 bool, source string) json.RawMessage {
	body, err := decodeBody(rawBody, b64)
	if err != nil {
		return h.fail(wrap, "", apierr.New(http.StatusBadRequest, apierr.CodeBadRequest, "the event body is not valid base64"))
	}
	req, err := newRequest(ctx, method, path, rawQuery, hdr, body, source)
	if err != nil {
		return h.fail(wrap, "", apierr.New(http.StatusBadRequest, apierr.CodeBadRequest, "the request path is malformed"))
	}
	rw := newCapture(MaxResponsePayload, wrap)
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
	return json.RawMessage(h.respond(rw, aborted))
}
