// Package gateway is the API gateway: the single entry point for external traffic. It routes
// by the compiled route table (reloaded when the file changes), authenticates bearer tokens
// with the shared verifier, asks authz for the route's permission (with a short decision
// cache, failing closed), and forwards through its own Dapr sidecar to the module's app id.
// It also refuses ambiguous paths, strips client-supplied internal headers, sets request ids,
// answers CORS preflights, limits body sizes and rates, and publishes an audit event for every
// request to a route marked audit: true.
package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/cors"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	authz "github.com/goplt/goplt/apps/authz/client"
	"github.com/goplt/goplt/internal/eventsig"
	"github.com/goplt/goplt/internal/httpx"
	"github.com/goplt/goplt/internal/policydoc"
	"github.com/goplt/goplt/internal/telemetry"
	"github.com/goplt/goplt/internal/token"
)

// Config configures a gateway.
type Config struct {
	Sidecar      string // http://127.0.0.1:<dapr http port>
	DaprAPIToken string
	PubSub       string
	// Signer signs the request events the gateway publishes.
	Signer *eventsig.Signer
	// CheckEvent holds a request event to its contract before it is published (nil: no check).
	CheckEvent func(topic string, payload []byte) error
	RoutesFile string
	// CORSOrigins lists the browser origins allowed to call the API (none: no CORS headers).
	CORSOrigins []string
	// Limits per class: "default" and "subject" always apply; a route's rateLimit names another.
	Limits map[string]Limit
	// DefaultBodyLimit applies to routes that set none.
	DefaultBodyLimit int64
	// RequestTimeout bounds a forwarded request.
	RequestTimeout time.Duration
	// DecisionTTL is how long an authz answer is reused for the same subject and permission.
	DecisionTTL time.Duration
	// TraceSampling is the share of new traces marked sampled (0..1): the platform's tracing
	// sampling rate, so that the gateway, which starts every request's trace, decides as the
	// sidecars would.
	TraceSampling float64
	// Tracer starts each routed request's server span, the root of its trace unless the client
	// sent a traceparent (nil: tracing off; the gateway still gives each request a
	// traceparent, sampled at TraceSampling).
	Tracer trace.Tracer
	// Meter records each routed request's duration by route and status code (nil: none).
	Meter metric.Meter
	// Ready reports whether the gateway can serve (its sidecar up); nil means always.
	Ready func(ctx context.Context) error
	// IdempotencyStore is the Dapr state store that keeps Idempotency-Key records ("": the
	// header is not honoured); IdempotencyTTL is how long a key is remembered.
	IdempotencyStore string
	IdempotencyTTL   time.Duration
}

// Authorizer is what the gateway needs from authz (the typed client fits).
type Authorizer interface {
	Check(ctx context.Context, q authz.Check) authz.Decision
}

// Verifier is what the gateway needs to authenticate (token.Verifier fits).
type Verifier interface {
	Verify(ctx context.Context, raw string) (*token.Claims, error)
}

// Gateway is an http.Handler.
type Gateway struct {
	cfg      Config
	log      *slog.Logger
	table    atomic.Pointer[Table]
	verifier Verifier
	authz    Authorizer
	proxy    *httputil.ReverseProxy
	cors     *cors.Cors
	limits   limiters
	cache    decisionCache
	audit    *auditQueue
	handler  http.Handler
	duration metric.Float64Histogram // nil without Config.Meter
	idem     *idempotencyStore       // nil: Idempotency-Key is not honoured
}

// New builds a gateway over an initial route table.
func New(cfg Config, t *Table, v Verifier, a Authorizer, log *slog.Logger) *Gateway {
	g := &Gateway{cfg: cfg, log: log, verifier: v, authz: a}
	g.table.Store(t)
	g.cache.ttl = cfg.DecisionTTL
	if cfg.Meter != nil {
		// The instrument and attributes otelhttp gives every app on the kernel, so one query
		// covers the gateway and the modules.
		g.duration, _ = cfg.Meter.Float64Histogram("http.server.request.duration", metric.WithUnit("s"),
			metric.WithDescription("Duration of HTTP server requests."),
			metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10))
	}
	transport := &http.Transport{
		Proxy: nil, MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: 90 * time.Second,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	}
	if cfg.IdempotencyStore != "" {
		// The proxy's pool of sidecar connections: a client of its own kept two idle ones,
		// and under load every state call dialled anew.
		g.idem = &idempotencyStore{sidecar: cfg.Sidecar, token: cfg.DaprAPIToken, store: cfg.IdempotencyStore,
			client: &http.Client{Timeout: 5 * time.Second, Transport: transport}, ttl: cfg.IdempotencyTTL, abandonAfter: 2*cfg.RequestTimeout + 5*time.Second}
	}
	sidecar, _ := url.Parse(cfg.Sidecar)
	g.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			rt := routeOf(pr.In.Context())
			pr.Out.URL.Scheme, pr.Out.URL.Host = sidecar.Scheme, sidecar.Host
			pr.Out.URL.Path = "/v1.0/invoke/" + rt.route.AppID + "/method" + rt.path
			pr.Out.URL.RawPath = ""
			pr.Out.URL.RawQuery = pr.In.URL.RawQuery
			pr.Out.Host = ""
			pr.Out.Header.Set("dapr-api-token", cfg.DaprAPIToken)
			pr.Out.Header.Set("X-Forwarded-For", rt.clientIP)
			pr.Out.Header.Set("X-Forwarded-Proto", "http")
		},
		Transport:  transport,
		BufferPool: &bufferPool{},
		// Zero: a response of known length goes out in one write when the handler ends;
		// ReverseProxy still flushes streams (no length, or text/event-stream) at once.
		FlushInterval:  0,
		ModifyResponse: g.modifyResponse,
		ErrorHandler:   g.proxyError,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	g.audit = newAuditQueue(10000, sidecarPublisher(&http.Client{Transport: transport, Timeout: 10 * time.Second}, cfg.Sidecar, cfg.DaprAPIToken, cfg.PubSub, cfg.Signer, cfg.CheckEvent), log)
	if len(cfg.CORSOrigins) > 0 {
		g.cors = cors.New(cors.Options{
			AllowedOrigins:   cfg.CORSOrigins,
			AllowedMethods:   []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"},
			AllowedHeaders:   []string{"Authorization", "Content-Type", "X-Request-ID", "Traceparent", "If-Match"},
			ExposedHeaders:   []string{"X-Request-ID", "Retry-After"},
			AllowCredentials: false,
			MaxAge:           600,
		})
	}
	var h http.Handler = http.HandlerFunc(g.serve)
	if g.cors != nil {
		h = g.cors.Handler(h)
	}
	g.handler = httpx.Recover(log, httpx.RequestID(h))
	return g
}

// Run keeps the route table current and publishes audit events until ctx ends.
func (g *Gateway) Run(ctx context.Context) {
	g.audit.run(ctx, 2, 10*time.Second)
	if g.cfg.RoutesFile != "" {
		go g.watchRoutes(ctx)
	}
}

// Wait returns when the audit queue has drained after Run's ctx ended.
func (g *Gateway) Wait() { g.audit.wait() }

// AuditLost is the number of request events lost (logged as errors when it happens).
func (g *Gateway) AuditLost() int64 { return g.audit.dropped.Load() }

// Table returns the route table in use.
func (g *Gateway) Table() *Table { return g.table.Load() }

// watchRoutes reloads the route table when its file changes. A request holds the table it
// started with, so a swap drops nothing; a broken file keeps the old table.
func (g *Gateway) watchRoutes(ctx context.Context) {
	var last string
	if fi, err := os.Stat(g.cfg.RoutesFile); err == nil {
		last = fi.ModTime().String() + strconv.FormatInt(fi.Size(), 10)
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(g.cfg.RoutesFile)
		if err != nil {
			continue
		}
		stamp := fi.ModTime().String() + strconv.FormatInt(fi.Size(), 10)
		if stamp == last {
			continue
		}
		tb, err := LoadTable(g.cfg.RoutesFile)
		if err != nil {
			g.log.Error("route table changed but does not load; keeping the current one", "err", err)
			last = stamp
			continue
		}
		g.table.Store(tb)
		last = stamp
		g.log.Info("route table reloaded", "routes", len(tb.Routes))
	}
}

func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.handler.ServeHTTP(w, r) }

// writeError answers with the platform's error body; gateway errors are never cached.
func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteError(w, r, status, code, msg)
}

// internalHeaders are never accepted from clients: the sidecar's, the platform's, and
// forwarding headers the gateway sets itself.
func stripInternal(h http.Header) {
	for k := range h {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "dapr-") || strings.HasPrefix(lk, "x-goplt-") || lk == "x-forwarded-for" ||
			lk == "x-forwarded-host" || lk == "x-forwarded-proto" || lk == "x-real-ip" || lk == "forwarded" ||
			lk == "x-envoy-original-path" || lk == "x-original-url" || lk == "x-rewrite-url" || lk == "metadata.cloudevent.id" {
			delete(h, k)
		}
	}
}

// traced gives the request a W3C traceparent (the client's, if it sent a valid one) that the
// forwarded request and the gateway's own calls (authz) carry, so every sidecar's spans of
// one request form one trace. A new trace is marked sampled with probability sampling, the
// platform's rate: the sidecars follow the caller's decision (Dapr samples parent-based), so
// marking every request sampled would trace every request wherever spans are exported,
// whatever rate the platform sets.
func traced(r *http.Request, sampling float64) *http.Request {
	tp := r.Header.Get("Traceparent")
	if !validTraceparent(tp) {
		var b [24]byte
		_, _ = rand.Read(b[:])
		flags := "-00"
		if sampled(b[:16], sampling) {
			flags = "-01"
		}
		tp = "00-" + hex.EncodeToString(b[:16]) + "-" + hex.EncodeToString(b[16:]) + flags
		r.Header.Set("Traceparent", tp)
	}
	return r.WithContext(telemetry.WithTraceParent(r.Context(), tp))
}

// sampled decides from the trace id as OpenTelemetry's TraceIDRatioBased sampler does (the
// trace id's last 8 bytes against rate·2^63), so the decision is the one a sidecar starting
// that trace would make.
func sampled(traceID []byte, rate float64) bool {
	switch {
	case rate >= 1:
		return true
	case rate <= 0:
		return false
	}
	return binary.BigEndian.Uint64(traceID[8:16])>>1 < uint64(rate*(1<<63))
}

// validTraceparent checks the W3C form 00-<32 hex>-<16 hex>-<2 hex>.
func validTraceparent(tp string) bool {
	if len(tp) != 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return false
	}
	for i, c := range tp {
		if i == 2 || i == 35 || i == 52 {
			continue
		}
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

type routed struct {
	route    *Route
	path     string
	clientIP string
}

type ctxKey struct{}

func routeOf(ctx context.Context) *routed { return ctx.Value(ctxKey{}).(*routed) }

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (g *Gateway) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	switch r.URL.Path {
	case "/healthz":
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return
	case "/readyz":
		if g.cfg.Ready != nil {
			if err := g.cfg.Ready(r.Context()); err != nil {
				httpx.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
				return
			}
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
		return
	case "/openapi.json":
		if r.Method == http.MethodGet {
			httpx.WriteJSON(w, http.StatusOK, OpenAPI(g.table.Load(), serverURL(r)))
			return
		}
	}
	path, err := Canonical(r.URL)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, "invalid_path", err.Error())
		return
	}
	tb := g.table.Load()
	rt, allowed := tb.Match(r.Method, path)
	if rt == nil {
		if len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(slices.Compact(slices.Sorted(slices.Values(allowed))), ", "))
			writeError(w, r, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed on "+path)
			return
		}
		writeError(w, r, http.StatusNotFound, "not_found", "no route for "+r.Method+" "+path)
		return
	}
	sw := &httpx.StatusRecorder{ResponseWriter: w}
	if g.cfg.Tracer != nil {
		ctx, span := g.cfg.Tracer.Start(telemetry.Extract(r.Context(), r.Header), rt.Method+" "+rt.Path, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("http.route", rt.Path)))
		defer func() {
			span.SetAttributes(attribute.Int("http.response.status_code", sw.Status))
			if sw.Status >= 500 {
				span.SetStatus(codes.Error, http.StatusText(sw.Status))
			}
			span.End()
		}()
		r = r.WithContext(ctx)
		telemetry.Inject(ctx, r.Header) // the forwarded request continues the gateway's span
	} else {
		r = traced(r, g.cfg.TraceSampling)
	}
	ip := clientIP(r)
	ev := RequestEvent{Version: 1, Actor: "anonymous", Action: "public", Resource: path, Route: rt.Method + " " + rt.Path,
		Decision: "public", RequestID: r.Header.Get("X-Request-ID"), ClientIP: ip}
	if rt.Permission != "" {
		ev.Action = rt.Permission
	}
	if g.duration != nil {
		defer func() {
			g.duration.Record(r.Context(), time.Since(start).Seconds(), metric.WithAttributes(attribute.String("http.request.method", r.Method),
				attribute.String("http.route", rt.Path), attribute.Int("http.response.status_code", sw.Status)))
		}()
	}
	if rt.Audit {
		defer func() {
			ev.Status = sw.Status
			ev.Outcome = "success"
			if sw.Status >= 400 {
				ev.Outcome = "failure"
			}
			ev.At = start.UTC()
			ev.DurationMS = float64(time.Since(start).Microseconds()) / 1000
			g.audit.add(ev)
		}()
	}
	if !g.rateOK(sw, r, "ip:"+ip, "default") || (rt.RateLimit != "" && !g.rateOK(sw, r, "ip:"+ip, rt.RateLimit)) {
		return
	}
	var subject string
	if !rt.Public {
		claims, ok := g.authenticate(sw, r, &ev)
		if !ok {
			return
		}
		if !g.rateOK(sw, r, "sub:"+claims.Subject, "subject") {
			return
		}
		if !g.authorize(sw, r, rt, path, claims, &ev) {
			return
		}
		subject = claims.Subject
	}
	limit := rt.BodyLimit
	if limit <= 0 {
		limit = g.cfg.DefaultBodyLimit
	}
	if r.ContentLength > limit {
		writeError(sw, r, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request body exceeds %d bytes", limit))
		return
	}
	key := r.Header.Get(IdempotencyKeyHeader)
	idempotent := key != "" && g.idem != nil && subject != "" && r.Method != http.MethodGet && r.Method != http.MethodHead
	if rt.request == nil && !idempotent {
		r.Body = http.MaxBytesReader(sw, r.Body, limit)
		g.forward(sw, r, rt, path, ip)
		return
	}
	body, ok := readBody(sw, r, limit)
	if !ok || (rt.request != nil && !checkJSON(sw, r, rt.request, body)) {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	if idempotent {
		g.idempotent(sw, r, rt, path, ip, subject, key, body)
		return
	}
	g.forward(sw, r, rt, path, ip)
}

// forward sends a routed request to its module's sidecar and passes the answer back.
func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, rt *Route, path, ip string) {
	stripInternal(r.Header)
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.RequestTimeout)
	defer cancel()
	ctx = context.WithValue(ctx, ctxKey{}, &routed{route: rt, path: path, clientIP: ip})
	g.proxy.ServeHTTP(w, r.WithContext(ctx))
}

func (g *Gateway) rateOK(w http.ResponseWriter, r *http.Request, key, class string) bool {
	lim, ok := g.cfg.Limits[class]
	if !ok {
		return true
	}
	allowed, retry := g.limits.allow(class+"|"+key, lim, time.Now())
	if allowed {
		return true
	}
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(retry.Seconds()))))
	writeError(w, r, http.StatusTooManyRequests, "rate_limited", "too many requests; retry later")
	return false
}

// authenticate verifies the bearer token: 401 (with WWW-Authenticate) when missing or bad.
func (g *Gateway) authenticate(w http.ResponseWriter, r *http.Request, ev *RequestEvent) (*token.Claims, bool) {
	ev.Decision = "unauthenticated"
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || raw == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="goplt"`)
		writeError(w, r, http.StatusUnauthorized, "unauthenticated", "this route needs a bearer token")
		return nil, false
	}
	claims, err := g.verifier.Verify(r.Context(), raw)
	if err != nil {
		var te *token.Error
		code, msg := "invalid_token", "the bearer token is not valid"
		if errors.As(err, &te) {
			switch te.Code {
			case token.CodeKeysDown:
				writeError(w, r, http.StatusServiceUnavailable, "auth_unavailable", "cannot verify tokens right now")
				return nil, false
			case token.CodeStale:
				msg = "the account changed after this token was issued; refresh it"
			case token.CodeRevoked:
				msg = "the session was ended; log in again"
			}
			code = te.Code
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="goplt", error="invalid_token"`)
		writeError(w, r, http.StatusUnauthorized, code, msg)
		return nil, false
	}
	ev.Actor = policydoc.User(claims.Subject)
	return claims, true
}

// authorize asks authz (through the decision cache) for the route's permission: 403 when
// denied, 503 when authz cannot answer. Either way the request does not pass.
func (g *Gateway) authorize(w http.ResponseWriter, r *http.Request, rt *Route, path string, c *token.Claims, ev *RequestEvent) bool {
	key := c.Subject + "\x00" + strings.Join(c.Roles, ",") + "\x00" + rt.Permission
	d, ok := g.cache.get(key)
	if !ok {
		d = g.authz.Check(r.Context(), authz.Check{Subject: authz.Subject{User: c.Subject, Roles: c.Roles}, Action: rt.Permission, Resource: rt.Module + ":" + path})
		if !d.Unavailable {
			g.cache.put(key, d)
		}
	}
	switch {
	case d.Allowed:
		ev.Decision = "allowed"
		return true
	case d.Unavailable:
		ev.Decision = "unavailable"
		g.log.Warn("authz unavailable: request denied", "request_id", r.Header.Get("X-Request-ID"), "reason", d.Reason)
		writeError(w, r, http.StatusServiceUnavailable, "authz_unavailable", "authorization is unavailable; the request was not let through")
	default:
		ev.Decision = "denied"
		writeError(w, r, http.StatusForbidden, "forbidden", "missing permission "+rt.Permission)
	}
	return false
}

// bufferPool lends the proxy its copy buffers: without one, ReverseProxy allocates and zeroes
// 32 KiB for every response, which was most of the gateway's per-request garbage.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// modifyResponse prepares a module's answer for the client: the gateway has already set the
// request's X-Request-ID on its response (the same id it forwarded), so the module's copy is
// dropped rather than sent twice; sidecar failures become the gateway's 503.
func (g *Gateway) modifyResponse(resp *http.Response) error {
	resp.Header.Del("X-Request-ID")
	return g.sidecarErrors(resp)
}

// sidecarErrors turns the sidecar's own failures (the module unreachable, no healthy
// instance) into 503 with the gateway's error shape. Module answers pass through unchanged.
func (g *Gateway) sidecarErrors(resp *http.Response) error {
	if resp.StatusCode < 500 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if err != nil {
		return err
	}
	var de struct {
		ErrorCode string `json:"errorCode"`
	}
	if json.Unmarshal(b, &de) == nil && strings.HasPrefix(de.ErrorCode, "ERR_") {
		rt := routeOf(resp.Request.Context())
		g.log.Warn("module unavailable", "app_id", rt.route.AppID, "sidecar_error", de.ErrorCode)
		body, _ := json.Marshal(map[string]httpx.Error{"error": {Code: "module_unavailable",
			Message: "module " + rt.route.Module + " is unavailable; retry later", RequestID: resp.Request.Header.Get("X-Request-ID")}})
		resp.StatusCode, resp.Status = http.StatusServiceUnavailable, "503 Service Unavailable"
		resp.Header = http.Header{"Content-Type": {"application/json"}, "Retry-After": {"2"}, "Cache-Control": {"no-store"}}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return nil
}

func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, r, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request body exceeds %d bytes", tooBig.Limit))
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, r, http.StatusGatewayTimeout, "timeout", "the module did not answer in time")
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads an answer.
	default:
		g.log.Warn("forwarding failed", "err", err, "path", r.URL.Path)
		w.Header().Set("Retry-After", "2")
		writeError(w, r, http.StatusServiceUnavailable, "module_unavailable", "the module could not be reached; retry later")
	}
}
