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

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/goplt/goplt/internal/telemetry"
)

// Client invokes apps through one sidecar.
type Client struct {
	base   string // http://127.0.0.1:<dapr http port>
	token  string // DAPR_API_TOKEN
	http   *http.Client
	tracer trace.Tracer // nil: no client spans (the trace context still travels)
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

// Traced returns a copy of c that records a client span for each call, with tp's tracer.
// Either way a call carries ctx's trace context (traceparent), so the sidecars' spans join
// the caller's trace.
func (c *Client) Traced(tp trace.TracerProvider) *Client {
	cp := *c
	cp.tracer = tp.Tracer("github.com/goplt/goplt/internal/invoke")
	return &cp
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

func (c *Client) do(ctx context.Context, method, u, what string, header http.Header, in, out any) (err error) {
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
	if c.tracer != nil {
		var span trace.Span
		ctx, span = c.tracer.Start(ctx, what, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("http.request.method", method)))
		defer span.End()
		defer func() {
			if err != nil {
				span.SetStatus(codes.Error, err.Error())
			}
		}()
	}
	if req.Header.Get("traceparent") == "" {
		telemetry.Inject(ctx, req.Header)
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
