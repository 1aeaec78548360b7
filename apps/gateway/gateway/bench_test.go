package gateway

import (
	"github.com/goplt/goplt/internal/routetable"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
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
	tb, _ := NewTable([]*Route{
		{Route: routetable.Route{Method: "GET", Path: "/blog/posts/{id}", AppID: "blog", Module: "blog", Public: true}},
		{Route: routetable.Route{Method: "GET", Path: "/blog/me/posts", AppID: "blog", Module: "blog", Permission: "blog.post.read"}},
	})
	g := New(Config{Sidecar: sidecar.URL, DefaultBodyLimit: 1 << 20, RequestTimeout: 0, DecisionTTL: 1 << 40,
		Limits: map[string]Limit{"default": {Rate: 1e9, Burst: 1e9}, "subject": {Rate: 1e9, Burst: 1e9}}},
		tb, fakeVerifier{}, &fakeAuthz{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	g.cfg.RequestTimeout = 1 << 40
	gw := httptest.NewServer(g)
	defer gw.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	get := func(b *testing.B, url, bearer string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
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
}
