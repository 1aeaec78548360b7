// Package invoke calls other apps through the caller's own Dapr sidecar (service invocation:
// Consul resolution, mTLS, access control, resiliency), with JSON bodies and the platform's
// error shape. The typed clients of the core services are built on it.
package invoke

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Client invokes apps through one sidecar.
type Client struct {
	base  string // http://127.0.0.1:<dapr http port>
	token string // DAPR_API_TOKEN
	http  *http.Client
}

// New returns a client of the sidecar listening on daprHTTPPort.
func New(daprHTTPPort int, daprAPIToken string) *Client {
	return &Client{
		base:  "http://127.0.0.1:" + strconv.Itoa(daprHTTPPort),
		token: daprAPIToken,
		http: &http.Client{
			Timeout:   15 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second},
		},
	}
}

// Error is a non-2xx answer: the platform's error body, or what the sidecar said.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

type traceKey struct{}

// WithTraceParent makes calls made with ctx carry the W3C traceparent, so the sidecars' spans
// of those calls join the caller's trace.
func WithTraceParent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return context.WithValue(ctx, traceKey{}, traceparent)
}

// TraceParent returns the W3C traceparent ctx carries ("" if none).
func TraceParent(ctx context.Context) string {
	tp, _ := ctx.Value(traceKey{}).(string)
	return tp
}

// Call sends in (if not nil) as JSON with method to path on app, and decodes a 2xx answer
// into out (if not nil). header adds request headers.
func (c *Client) Call(ctx context.Context, method, app, path string, header http.Header, in, out any) error {
	return c.do(ctx, method, c.base+"/v1.0/invoke/"+url.PathEscape(app)+"/method"+path, "invoke "+app+" "+path, header, in, out)
}

// Secret reads a secret's fields from store through the sidecar's secrets API (allowed only
// for the secrets the app's configuration scopes in).
func (c *Client) Secret(ctx context.Context, store, name string) (map[string]string, error) {
	var out map[string]string
	err := c.do(ctx, http.MethodGet, c.base+"/v1.0/secrets/"+url.PathEscape(store)+"/"+url.PathEscape(name), "secret "+name, nil, nil, &out)
	return out, err
}

func (c *Client) do(ctx context.Context, method, u, what string, header http.Header, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s: encode: %w", what, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("dapr-api-token", c.token)
	}
	if tp, ok := ctx.Value(traceKey{}).(string); ok && req.Header.Get("traceparent") == "" {
		req.Header.Set("traceparent", tp)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("%s: read: %w", what, err)
	}
	if resp.StatusCode/100 != 2 {
		return decodeError(resp.StatusCode, b)
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s: decode: %w", what, err)
		}
	}
	return nil
}

// decodeError reads the platform's {"error":{code,message}} or Dapr's {errorCode,message}.
func decodeError(status int, b []byte) error {
	var platform struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(b, &platform) == nil && platform.Error.Code != "" {
		return &Error{Status: status, Code: platform.Error.Code, Message: platform.Error.Message}
	}
	var sidecar struct {
		ErrorCode string `json:"errorCode"`
		Message   string `json:"message"`
	}
	if json.Unmarshal(b, &sidecar) == nil && sidecar.ErrorCode != "" {
		return &Error{Status: status, Code: sidecar.ErrorCode, Message: sidecar.Message}
	}
	return &Error{Status: status, Code: "http_" + strconv.Itoa(status), Message: string(bytes.TrimSpace(b))}
}
