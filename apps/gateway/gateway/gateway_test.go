package gateway

import (
	"context"
	"encoding/json"
	"github.com/goplt/goplt/internal/routetable"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authz "github.com/goplt/goplt/apps/authz/client"
	"github.com/goplt/goplt/internal/token"
)

// Unit tests with a fake sidecar and fakes for auth and authz; the end-to-end suite
// (apps/gateway/e2e) runs the real ones.

type fakeVerifier struct{}

func (fakeVerifier) Verify(_ context.Context, raw string) (*token.Claims, error) {
	switch raw {
	case "editor":
		c := &token.Claims{Roles: []string{"blog.editor"}}
		c.Subject = "u-editor"
		return c, nil
	case "editor2":
		c := &token.Claims{Roles: []string{"blog.editor"}}
		c.Subject = "u-editor2"
		return c, nil
	case "reader":
		c := &token.Claims{Roles: []string{"blog.reader"}}
		c.Subject = "u-reader"
		return c, nil
	case "keysdown":
		return nil, &token.Error{Code: token.CodeKeysDown, Err: io.EOF}
	}
	return nil, &token.Error{Code: token.CodeSignature, Err: io.EOF}
}

type fakeAuthz struct {
	calls atomic.Int32
	down  atomic.Bool
}

func (f *fakeAuthz) Check(_ context.Context, q authz.Check) authz.Decision {
	f.calls.Add(1)
	if f.down.Load() {
		return authz.Decision{Reason: "authz unavailable", Unavailable: true}
	}
	for _, r := range q.Subject.Roles {
		if r == "blog.editor" {
			return authz.Decision{Allowed: true, Reason: "role"}
		}
	}
	return authz.Decision{Reason: "no"}
}

type seen struct {
	mu      sync.Mutex
	path    string
	headers http.Header
}

// recorded collects published request events.
type recorded struct {
	mu     sync.Mutex
	events []RequestEvent
}

func (r *recorded) all() []RequestEvent {
	time.Sleep(100 * time.Millisecond) // the queue publishes in the background
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]RequestEvent(nil), r.events...)
}

func setup(t *testing.T, sidecar http.HandlerFunc) (*Gateway, *fakeAuthz, *recorded) {
	t.Helper()
	sc := httptest.NewServer(sidecar)
	t.Cleanup(sc.Close)
	tb, err := NewTable([]*Route{
		{Route: routetable.Route{Method: "GET", Path: "/blog/posts/{id}", AppID: "blog", Module: "blog", Public: true}},
		{Route: routetable.Route{Method: "POST", Path: "/blog/posts", AppID: "blog", Module: "blog", Permission: "blog.post.create", Audit: true, BodyLimit: 1024}},
	})
	if err != nil {
		t.Fatal(err)
	}
	az := &fakeAuthz{}
	g := New(Config{Sidecar: sc.URL, DaprAPIToken: "sidecar-token", PubSub: "pubsub", DefaultBodyLimit: 1 << 20,
		RequestTimeout: 2 * time.Second, DecisionTTL: time.Minute,
		Limits: map[string]Limit{"default": {Rate: 1000, Burst: 1000}}}, tb, fakeVerifier{}, az, slog.New(slog.NewTextHandler(io.Discard, nil)))
	rec := &recorded{}
	g.audit.publish = func(_ context.Context, e RequestEvent) error {
		rec.mu.Lock()
		rec.events = append(rec.events, e)
		rec.mu.Unlock()
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.Run(ctx)
	t.Cleanup(func() { cancel(); g.Wait() })
	return g, az, rec
}

func call(g *Gateway, method, path, bearer, body string, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, req)
	return rec
}

func code(rec *httptest.ResponseRecorder) string {
	var e struct{ Error struct{ Code string } }
	_ = json.Unmarshal(rec.Body.Bytes(), &e)
	return e.Error.Code
}

func TestForwardingAndHeaders(t *testing.T) {
	var s seen
	g, az, events := setup(t, func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.path, s.headers = r.URL.RequestURI(), r.Header.Clone()
		s.mu.Unlock()
		w.Header().Set("X-Module", "blog")
		w.Header().Set("X-Request-ID", r.Header.Get("X-Request-ID")) // as the kernel answers
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, `{"error":{"code":"module_says_no"}}`)
	})
	rec := call(g, "POST", "/blog/posts?x=1", "editor", `{}`, "X-Forwarded-For", "1.2.3.4", "dapr-caller-app-id", "auth",
		"X-Goplt-User", "admin", "dapr-api-token", "guess", "X-Request-ID", "client-id-1", "Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	if rec.Code != http.StatusTeapot || code(rec) != "module_says_no" || rec.Header().Get("X-Module") != "blog" {
		t.Fatalf("module answer not passed through: %d %s %v", rec.Code, rec.Body, rec.Header())
	}
	if ids := rec.Header().Values("X-Request-ID"); len(ids) != 1 || ids[0] != "client-id-1" {
		t.Errorf("X-Request-ID in the answer: %q, want it once", ids)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.path != "/v1.0/invoke/blog/method/blog/posts?x=1" {
		t.Errorf("forwarded to %s", s.path)
	}
	h := s.headers
	if h.Get("dapr-api-token") != "sidecar-token" || h.Get("X-Forwarded-For") != "192.0.2.1" || h.Get("dapr-caller-app-id") != "" ||
		h.Get("X-Goplt-User") != "" || h.Get("X-Request-ID") != "client-id-1" || h.Get("Traceparent") == "" || h.Get("Authorization") == "" {
		t.Errorf("headers at the sidecar: %v", h)
	}
	// A second call reuses the cached decision.
	call(g, "POST", "/blog/posts", "editor", `{}`)
	if n := az.calls.Load(); n != 1 {
		t.Errorf("%d authz calls for two requests, want 1 (decision cache)", n)
	}
	if ev := events.all(); len(ev) != 2 || ev[0].Actor != "user:u-editor" || ev[0].Status != http.StatusTeapot || ev[0].Decision != "allowed" {
		t.Errorf("audit events: %+v", ev)
	}
}

func TestAuthOutcomes(t *testing.T) {
	g, az, events := setup(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) })
	for _, tc := range []struct {
		bearer string
		status int
		code   string
	}{
		{"", 401, "unauthenticated"},
		{"forged", 401, token.CodeSignature},
		{"keysdown", 503, "auth_unavailable"},
		{"reader", 403, "forbidden"},
		{"editor", 201, ""},
	} {
		rec := call(g, "POST", "/blog/posts", tc.bearer, `{}`)
		if rec.Code != tc.status || code(rec) != tc.code {
			t.Errorf("bearer %q: %d %s, want %d %s", tc.bearer, rec.Code, rec.Body, tc.status, tc.code)
		}
		if tc.status == 401 && rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("bearer %q: 401 without WWW-Authenticate", tc.bearer)
		}
	}
	// authz down: closed, and the failure is not cached.
	az.down.Store(true)
	g.cache = decisionCache{ttl: time.Minute}
	if rec := call(g, "POST", "/blog/posts", "editor", `{}`); rec.Code != 503 || code(rec) != "authz_unavailable" {
		t.Fatalf("authz down: %d %s", rec.Code, rec.Body)
	}
	az.down.Store(false)
	if rec := call(g, "POST", "/blog/posts", "editor", `{}`); rec.Code != 201 {
		t.Fatalf("authz back: %d %s", rec.Code, rec.Body)
	}
	decisions := map[string]int{}
	for _, e := range events.all() {
		decisions[e.Decision]++
	}
	if decisions["unauthenticated"] != 3 || decisions["denied"] != 1 || decisions["unavailable"] != 1 {
		t.Errorf("audit decisions %v", decisions)
	}
}

func TestSidecarFailuresBecome503(t *testing.T) {
	g, _, _ := setup(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `{"errorCode":"ERR_DIRECT_INVOKE","message":"failed to invoke, id: blog"}`)
	})
	rec := call(g, "GET", "/blog/posts/1", "", "")
	if rec.Code != http.StatusServiceUnavailable || code(rec) != "module_unavailable" || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("sidecar failure: %d %s", rec.Code, rec.Body)
	}
	// A module's own 500 passes through untouched.
	g2, _, _ := setup(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `{"error":{"code":"internal"}}`)
	})
	if rec := call(g2, "GET", "/blog/posts/1", "", ""); rec.Code != 500 || code(rec) != "internal" {
		t.Fatalf("module 500: %d %s", rec.Code, rec.Body)
	}
	// Sidecar unreachable.
	g3, _, _ := setup(t, func(w http.ResponseWriter, r *http.Request) {})
	g3.proxy.Transport = &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return nil, io.ErrClosedPipe }}
	if rec := call(g3, "GET", "/blog/posts/1", "", ""); rec.Code != 503 || code(rec) != "module_unavailable" {
		t.Fatalf("sidecar unreachable: %d %s", rec.Code, rec.Body)
	}
}

func TestLimitsAndErrors(t *testing.T) {
	g, _, _ := setup(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) })
	if rec := call(g, "POST", "/blog/posts", "editor", strings.Repeat("a", 2048)); rec.Code != 413 || code(rec) != "body_too_large" {
		t.Errorf("body over the route's limit: %d %s", rec.Code, rec.Body)
	}
	if rec := call(g, "GET", "/blog/%2e%2e/posts/1", "", ""); rec.Code != 400 || code(rec) != "invalid_path" {
		t.Errorf("dot-dot: %d %s", rec.Code, rec.Body)
	}
	if rec := call(g, "DELETE", "/blog/posts/1", "", ""); rec.Code != 405 || rec.Header().Get("Allow") != "GET" {
		t.Errorf("405: %d %v", rec.Code, rec.Header())
	}
	if rec := call(g, "GET", "/nothing", "", ""); rec.Code != 404 || code(rec) != "not_found" {
		t.Errorf("404: %d %s", rec.Code, rec.Body)
	}
	g.cfg.Limits["default"] = Limit{Rate: 1, Burst: 2}
	g.limits = limiters{}
	var last *httptest.ResponseRecorder
	for range 5 {
		last = call(g, "GET", "/blog/posts/1", "", "")
	}
	if last.Code != 429 || last.Header().Get("Retry-After") == "" {
		t.Errorf("rate limit: %d %v", last.Code, last.Header())
	}
}

// The route table is re-read when its file changes; a broken file keeps the old table.
func TestRouteTableReload(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/routes.json"
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"routes":[{"method":"GET","path":"/a","appId":"x","module":"x","public":true}]}`)
	tb, err := LoadTable(file)
	if err != nil {
		t.Fatal(err)
	}
	g := New(Config{Sidecar: "http://127.0.0.1:1", RoutesFile: file, DefaultBodyLimit: 1 << 20, RequestTimeout: time.Second},
		tb, fakeVerifier{}, &fakeAuthz{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); g.Wait() }()
	g.Run(ctx)
	has := func(path string) bool { r, _ := g.Table().Match("GET", path); return r != nil }
	time.Sleep(1100 * time.Millisecond) // a different modification time
	write(`{"routes":[{"method":"GET","path":"/a","appId":"x","module":"x","public":true},{"method":"GET","path":"/b","appId":"x","module":"x","public":true}]}`)
	deadline := time.Now().Add(5 * time.Second)
	for !has("/b") {
		if time.Now().After(deadline) {
			t.Fatal("the new route did not appear within 5s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	write(`{"routes":[{"method":"GET","path":"no-slash"}]}`)
	time.Sleep(2500 * time.Millisecond)
	if !has("/a") || !has("/b") {
		t.Fatal("a broken table replaced the good one")
	}
}

// A module that streams (no length, flushing as it goes) reaches the client part by part: the
// gateway buffers only answers of known length.
func TestStreamsPassThrough(t *testing.T) {
	read := make(chan struct{})
	g, _, _ := setup(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		_, _ = io.WriteString(w, "{\"n\":1}\n")
		w.(http.Flusher).Flush()
		select {
		case <-read: // the client has the first line while the answer is still open
		case <-time.After(5 * time.Second):
		}
		_, _ = io.WriteString(w, "{\"n\":2}\n")
	})
	gw := httptest.NewServer(g)
	defer gw.Close()
	resp, err := http.Get(gw.URL + "/blog/posts/1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, 8)
	start := time.Now()
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "{\"n\":1}\n" {
		t.Fatalf("first line %q, %v", first, err)
	}
	if waited := time.Since(start); waited > 4*time.Second {
		t.Fatalf("the first line came only with the end of the answer (%s)", waited)
	}
	close(read)
	rest, _ := io.ReadAll(resp.Body)
	if string(rest) != "{\"n\":2}\n" {
		t.Fatalf("rest %q", rest)
	}
}
