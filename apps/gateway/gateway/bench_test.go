package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/goplt/goplt/internal/routetable"
)

// BenchmarkHop isolates what the gateway adds: the same request to a fake sidecar, directly
// and through the gateway (a public route and an authenticated one, with the verifier and
// decision caches warm as in steady state), one at a time over loopback.
func BenchmarkHop(b *testing.B) {
	sidecar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"posts":[]}`)
	}))
	defer sidecar.Close()
	platform, err := LoadTable("../../../deploy/gateway/routes.json")
	if err != nil {
		b.Fatal(err)
	}
	tb, _ := NewTable([]*Route{
		{Route: routetable.Route{Method: "GET", Path: "/blog/posts/{id}", AppID: "blog", Module: "blog", Public: true}},
		{Route: routetable.Route{Method: "GET", Path: "/blog/me/posts", AppID: "blog", Module: "blog", Permission: "blog.post.read"}},
		// The same POST with and without blog's request schema (the compiled one).
		{Route: routetable.Route{Method: "POST", Path: "/blog/posts", AppID: "blog", Module: "blog", Permission: "blog.post.create", Request: "blog.post.input.v1"},
			request: platformSchema(b, platform, "POST", "/blog/posts")},
		{Route: routetable.Route{Method: "POST", Path: "/blog/drafts", AppID: "blog", Module: "blog", Permission: "blog.post.create"}},
	})
	g := New(Config{Sidecar: sidecar.URL, DefaultBodyLimit: 1 << 20, RequestTimeout: 0, DecisionTTL: 1 << 40,
		Limits: map[string]Limit{"default": {Rate: 1e9, Burst: 1e9}, "subject": {Rate: 1e9, Burst: 1e9}}},
		tb, fakeVerifier{}, &fakeAuthz{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	g.cfg.RequestTimeout = 1 << 40
	gw := httptest.NewServer(g)
	defer gw.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	var send func(b *testing.B, method, url, bearer, body string)
	get := func(b *testing.B, url, bearer string) {
		send(b, http.MethodGet, url, bearer, "")
	}
	send = func(b *testing.B, method, url, bearer, body string) {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			get(b, sidecar.URL+"/v1.0/invoke/blog/method/blog/me/posts", "")
		}
	})
	b.Run("gateway-public", func(b *testing.B) {
		for b.Loop() {
			get(b, gw.URL+"/blog/posts/1", "")
		}
	})
	b.Run("gateway-authenticated", func(b *testing.B) {
		for b.Loop() {
			get(b, gw.URL+"/blog/me/posts", "editor")
		}
	})
	b.Run("post-checked", func(b *testing.B) {
		for b.Loop() {
			send(b, http.MethodPost, gw.URL+"/blog/posts", "editor", samplePost)
		}
	})
	b.Run("post-unchecked", func(b *testing.B) {
		for b.Loop() {
			send(b, http.MethodPost, gw.URL+"/blog/drafts", "editor", samplePost)
		}
	})
}

// samplePost is a typical body of POST /blog/posts.
const samplePost = `{"title": "Declarative platforms", "body": "A module is described by one manifest; the compiler turns every manifest into sidecar components, access lists, policies and the gateway's routes."}`

func platformSchema(b *testing.B, t *Table, method, path string) *jsonschema.Schema {
	for _, r := range t.Routes {
		if r.Method == method && r.Path == path && r.request != nil {
			return r.request
		}
	}
	b.Fatalf("the platform's %s %s has no request schema", method, path)
	return nil
}

// BenchmarkCheckBody is the request check alone, on the sample bodies of two routes with the
// platform's compiled schemas, beside reading the same body unchecked.
func BenchmarkCheckBody(b *testing.B) {
	platform, err := LoadTable("../../../deploy/gateway/routes.json")
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, method, path, body string }{
		{"blog-post", "POST", "/blog/posts", samplePost},
		{"registration", "POST", "/users", `{"email": "ada@example.com", "password": "correct horse battery staple", "displayName": "Ada Lovelace"}`},
	} {
		sch := platformSchema(b, platform, c.method, c.path)
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				r := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
				w := httptest.NewRecorder()
				if !checkBody(w, r, sch, 1<<20) {
					b.Fatalf("refused: %s", w.Body)
				}
			}
		})
		b.Run(c.name+"-unchecked", func(b *testing.B) {
			for b.Loop() {
				r := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
				w := httptest.NewRecorder()
				if _, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
