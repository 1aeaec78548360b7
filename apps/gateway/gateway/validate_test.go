package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/goplt/goplt/internal/routetable"
)

// postInput is the request schema the tests' POST /blog/posts names.
const postInput = `{"type": "object", "additionalProperties": false, "required": ["title"],
  "properties": {"title": {"type": "string", "minLength": 1, "maxLength": 20}, "body": {"type": "string"},
  "tags": {"type": "array", "items": {"type": "string"}}}}`

// writeTable writes a route table file whose POST route names postInput.
func writeTable(t *testing.T) string {
	t.Helper()
	f := routetable.File{Routes: []routetable.Route{
		{Method: "POST", Path: "/blog/posts", AppID: "blog", Module: "blog", Permission: "blog.post.create", BodyLimit: 1024,
			Summary: "Write a post", Request: "blog.post.input.v1", Response: &routetable.Response{Status: 201, Schema: "blog.post.v1"}},
		{Method: "GET", Path: "/blog/posts/{id}", AppID: "blog", Module: "blog", Public: true},
	}, Schemas: map[string]json.RawMessage{"blog.post.input.v1": json.RawMessage(postInput), "blog.post.v1": json.RawMessage(`{"type": "object"}`)}}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "routes.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRequestBodiesAreCheckedBeforeTheModule(t *testing.T) {
	var mu sync.Mutex
	var got []string
	g, _, _ := setup(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	})
	tb, err := LoadTable(writeTable(t))
	if err != nil {
		t.Fatal(err)
	}
	g.table.Store(tb)
	for _, tc := range []struct {
		body, status, code, pointer string
	}{
		{`{"title": "ok", "body": "x"}`, "201", "", ""},
		{`{"body": "x"}`, "400", "invalid_body", "/title"},
		{`{"title": 5}`, "400", "invalid_body", "/title"},
		{`{"title": ""}`, "400", "invalid_body", "/title"},
		{`{"title": "ok", "admin": true}`, "400", "invalid_body", "/admin"},
		{`{"title": "ok", "tags": ["a", 2]}`, "400", "invalid_body", "/tags/1"},
		{`[1, 2]`, "400", "invalid_body", ""},
		{`{"title": "ok"} {}`, "400", "invalid_json", ""},
		{`{"title": `, "400", "invalid_json", ""},
		{`{"title": "` + strings.Repeat("a", 2000) + `"}`, "413", "body_too_large", ""},
	} {
		rec := call(g, "POST", "/blog/posts", "editor", tc.body)
		var e struct {
			Error struct {
				Code    string
				Pointer *string
			}
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &e)
		if got := rec.Result().Status[:3]; got != tc.status || e.Error.Code != tc.code {
			t.Errorf("%.40s: %d %s, want %s %s", tc.body, rec.Code, rec.Body, tc.status, tc.code)
			continue
		}
		if tc.code == "invalid_body" && (e.Error.Pointer == nil || *e.Error.Pointer != tc.pointer) {
			t.Errorf("%.40s: pointer %v, want %q (%s)", tc.body, e.Error.Pointer, tc.pointer, rec.Body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != `{"title": "ok", "body": "x"}` {
		t.Errorf("the module received %q, want only the valid body, unchanged", got)
	}
}

func TestLoadTableRefusesAMissingSchema(t *testing.T) {
	f := routetable.File{Routes: []routetable.Route{{Method: "POST", Path: "/x", AppID: "x", Module: "x", Public: true, Request: "x.in.v1"}}}
	b, _ := json.Marshal(f)
	p := filepath.Join(t.TempDir(), "routes.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTable(p); err == nil || !strings.Contains(err.Error(), "x.in.v1") {
		t.Errorf("LoadTable: %v, want the missing schema named", err)
	}
	f.Schemas = map[string]json.RawMessage{"x.in.v1": json.RawMessage(`{"type": 5}`)}
	b, _ = json.Marshal(f)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTable(p); err == nil || !strings.Contains(err.Error(), "x.in.v1") {
		t.Errorf("LoadTable with a broken schema: %v", err)
	}
}
