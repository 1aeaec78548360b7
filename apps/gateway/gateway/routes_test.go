package gateway

import (
	"github.com/goplt/goplt/internal/routetable"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func table(t *testing.T) *Table {
	t.Helper()
	tb, err := NewTable([]*Route{
		{Route: routetable.Route{Method: "GET", Path: "/blog/posts/{id}", AppID: "blog", Public: true}},
		{Route: routetable.Route{Method: "PUT", Path: "/blog/posts/{id}", AppID: "blog", Permission: "blog.post.update"}},
		{Route: routetable.Route{Method: "GET", Path: "/blog/posts/mine", AppID: "blog", Permission: "blog.post.read"}},
		{Route: routetable.Route{Method: "GET", Path: "/files/{rest...}", AppID: "files", Public: true}},
		{Route: routetable.Route{Method: "POST", Path: "/admin/users", AppID: "identity", Permission: "identity.user.manage"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestMatch(t *testing.T) {
	tb := table(t)
	for _, tc := range []struct {
		method, path, want string
		allowed            string
	}{
		{"GET", "/blog/posts/7", "GET /blog/posts/{id}", ""},
		{"HEAD", "/blog/posts/7", "GET /blog/posts/{id}", ""},
		{"PUT", "/blog/posts/7", "PUT /blog/posts/{id}", ""},
		{"GET", "/blog/posts/mine", "GET /blog/posts/mine", ""}, // literal wins
		{"DELETE", "/blog/posts/7", "", "GET,PUT"},
		{"GET", "/blog/posts", "", ""},
		{"GET", "/blog/posts/7/comments", "", ""},
		{"GET", "/files/a/b/c", "GET /files/{rest...}", ""},
		{"GET", "/files", "", ""},
		{"POST", "/admin/users", "POST /admin/users", ""},
		{"POST", "/Admin/users", "", ""}, // case matters: it is the module's path too
	} {
		r, allowed := tb.Match(tc.method, tc.path)
		got := ""
		if r != nil {
			got = r.Method + " " + r.Path
		}
		if got != tc.want || strings.Join(allowed, ",") != tc.allowed {
			t.Errorf("%s %s = %q (allowed %v), want %q (allowed %s)", tc.method, tc.path, got, allowed, tc.want, tc.allowed)
		}
	}
}

// The path-trick catalogue: every way of making one layer see another path is refused.
func TestCanonicalRefusesAmbiguousPaths(t *testing.T) {
	for _, ok := range []string{"/", "/blog/posts/7", "/users/caf%C3%A9", "/a-b_c~d/e"} {
		u, _ := url.Parse(ok)
		if _, err := Canonical(u); err != nil {
			t.Errorf("Canonical(%s) = %v, want ok", ok, err)
		}
	}
	for _, bad := range []string{
		"/admin/../blog/posts/1", "/blog/./posts/1", "/blog/posts/..", "/blog//posts/1", "/blog/posts/1/",
		"/blog/%2e%2e/admin/users", "/blog/%2E%2E/admin", "/blog/.%2e/admin", "/admin%2fusers", "/admin%2Fusers",
		"/blog/%252e%252e/admin", "/blog/posts/1%00", "/blog/posts/1;jsessionid=x", "/blog/posts/1%3bx",
		"/blog\\..\\admin", "/blog/%5c../admin", "/blog/posts/%0a", "/" + strings.Repeat("a", 3000),
	} {
		u, err := url.Parse(bad)
		if err != nil {
			continue // not even a URL: the server refuses it earlier
		}
		if p, err := Canonical(u); err == nil {
			t.Errorf("Canonical(%q) accepted as %q", bad, p)
		}
	}
}

// Every request gets a W3C traceparent: the client's when valid, else a fresh one, marked
// sampled at the platform's rate.
func TestTraced(t *testing.T) {
	valid := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tp := range []string{valid, "", "00-xyz", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", valid + "0"} {
		r := httptest.NewRequest("GET", "/x", nil)
		if tp != "" {
			r.Header.Set("Traceparent", tp)
		}
		got := traced(r, 1).Header.Get("Traceparent")
		if !validTraceparent(got) || (tp == valid) != (got == valid) {
			t.Errorf("traceparent %q became %q", tp, got)
		}
	}
	count := func(rate float64) (n int) {
		for range 2000 {
			if strings.HasSuffix(traced(httptest.NewRequest("GET", "/x", nil), rate).Header.Get("Traceparent"), "-01") {
				n++
			}
		}
		return n
	}
	if n := count(0); n != 0 {
		t.Errorf("rate 0: %d of 2000 new traces sampled", n)
	}
	if n := count(1); n != 2000 {
		t.Errorf("rate 1: %d of 2000 new traces sampled", n)
	}
	// Binomial(2000, 0.25): 500 ± 19.4; 400..600 is more than five standard deviations.
	if n := count(0.25); n < 400 || n > 600 {
		t.Errorf("rate 0.25: %d of 2000 new traces sampled", n)
	}
	// The client's decision stands whatever the rate.
	r := httptest.NewRequest("GET", "/x", nil)
	r.Header.Set("Traceparent", valid)
	if got := traced(r, 0).Header.Get("Traceparent"); got != valid {
		t.Errorf("client's sampled traceparent became %q at rate 0", got)
	}
}
