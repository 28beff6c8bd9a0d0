package lambdarelay

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"

	"github.com/outgate/outgate/internal/apierr"
	"github.com/outgate/outgate/internal/hop"
	"github.com/outgate/outgate/internal/upstream"
)

// envelope builds the response event of one event kind around an answer.
type envelope func(status int, h http.Header, body string, b64 bool) any

func v1Envelope(status int, h http.Header, body string, b64 bool) any {
	return events.APIGatewayProxyResponse{StatusCode: status, MultiValueHeaders: map[string][]string(h), Body: body, IsBase64Encoded: b64}
}

func v2Envelope(status int, h http.Header, body string, b64 bool) any {
	resp := events.APIGatewayV2HTTPResponse{StatusCode: status, Headers: map[string]string{}, Body: body, IsBase64Encoded: b64}
	for k, vs := range h {
		if k == "Set-Cookie" {
			resp.Cookies = append(resp.Cookies, vs...)
			continue
		}
		resp.Headers[k] = strings.Join(vs, ", ")
	}
	return resp
}

// encode is the response event exactly as the runtime sends it: aws-lambda-go
// passes a json.RawMessage through unchanged. HTML escaping is off, as in
// aws-lambda-go's own encoder: with it, every <, > and & of an XML or HTML
// answer took 6 bytes, and a 1.8 MB SOAP answer overflowed the limit.
func encode(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// The events hold only strings, ints, bools and string maps.
		panic("lambdarelay: encoding a response event: " + err.Error())
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// respond turns what the relay handler wrote into the response event.
func (h *Handler) respond(rw *capture, aborted bool) []byte {
	id := rw.header.Get(hop.RequestIDHeader)
	if aborted {
		return h.fail(rw.wrap, id, apierr.New(http.StatusBadGateway, apierr.CodeBadGateway, "the upstream connection broke during the response"))
	}
	if !rw.held {
		// Answers the handler made itself (errors, /_outgate/*) are small,
		// and upstream.Do did not hold them: do it here.
		if _, detail := rw.Hold(); rw.refused {
			h.log.Warn("response too large for Lambda's synchronous limit; sent 502 instead", "request_id", id, "detail", detail)
		}
	}
	if rw.refused {
		return h.fail(rw.wrap, id, errTooLarge)
	}
	return rw.out
}

var errTooLarge = apierr.New(http.StatusBadGateway, apierr.CodeResponseTooLarge,
	"the upstream's response is larger than the Lambda payload limit (6 MB)")

// fail is outgate's JSON error as a response event.
func (h *Handler) fail(wrap envelope, id string, e *apierr.E) []byte {
	rw := &upstream.Recorder{Max: 64 << 10} // an error body: a few hundred bytes
	apierr.Write(rw, id, e)
	if id != "" {
		rw.Header().Set(hop.RequestIDHeader, id)
	}
	return encode(wrap(rw.Status, rw.Header(), rw.Body(), false))
}

// capture is the ResponseWriter of one invocation: it keeps the answer in
// memory and refuses it (upstream.Holder) as soon as it cannot fit in a
// response event of limit bytes, so no more of the partner's body is read
// than could be delivered.
type capture struct {
	header http.Header
	status int
	body   bytes.Buffer
	limit  int
	wrap   envelope
	budget int // raw body bytes that may still fit; computed on the first Write
	seen   int64
	// held: Hold has run; then either refused, or out is the encoded event.
	held, refused bool
	detail        string
	out           []byte
}

func newCapture(limit int, wrap envelope) *capture {
	return &capture{header: http.Header{}, limit: limit, wrap: wrap, budget: -1}
}

func (c *capture) Header() http.Header { return c.header }

func (c *capture) WriteHeader(s int) {
	if c.status == 0 {
		c.status = s
	}
}

var errNoFit = errors.New("the response cannot fit in a Lambda response event")

func (c *capture) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	if c.refused {
		return 0, errNoFit
	}
	if c.budget < 0 {
		c.budget = c.bodyBudget()
		if cl, err := strconv.ParseInt(c.header.Get("Content-Length"), 10, 64); err == nil && cl > int64(c.budget) {
			c.refuse(fmt.Sprintf("the partner announced a %d-byte body; at most %d bytes fit in a %d-byte Lambda response", cl, c.budget, c.limit))
			return 0, errNoFit
		}
	}
	c.seen += int64(len(p))
	if c.seen > int64(c.budget) {
		c.refuse(fmt.Sprintf("the partner's body passed %d bytes; at most %d bytes fit in a %d-byte Lambda response", c.budget, c.budget, c.limit))
		return 0, errNoFit
	}
	return c.body.Write(p)
}

// bodyBudget is the largest raw body that could fit, given the status and
// headers: an upper bound (the exact size is checked in Hold), so nothing
// that fits is refused. A text body's JSON string is at least as long as the
// body; any other body is base64, 4 bytes for every 3 (rounded up).
func (c *capture) bodyBudget() int {
	if isText(c.header.Get("Content-Type")) {
		// Text that turns out not to be UTF-8 is sent as base64, which is
		// longer still: the text bound holds for both.
		return max(0, c.limit-len(encode(c.wrap(c.status, c.header, "", false))))
	}
	room := c.limit - len(encode(c.wrap(c.status, c.header, "", true)))
	return max(0, room/4*3)
}

func (c *capture) refuse(detail string) {
	c.held, c.refused, c.detail = true, true, detail
	c.body = bytes.Buffer{} // nothing of it will be sent
}

// Hold encodes the answer and checks the event's real size against the
// limit (upstream.Holder).
func (c *capture) Hold() (*apierr.E, string) {
	if c.held {
		if c.refused {
			return errTooLarge, c.detail
		}
		return nil, ""
	}
	if c.status == 0 {
		c.status = http.StatusOK
	}
	body, b64 := encodeBody(c.header, c.body.Bytes())
	out := encode(c.wrap(c.status, c.header, body, b64))
	c.body = bytes.Buffer{}
	if len(out) > c.limit {
		c.refuse(fmt.Sprintf("the response event would be %d bytes; Lambda's limit is %d", len(out), c.limit))
		return errTooLarge, c.detail
	}
	c.held, c.out = true, out
	return nil, ""
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
