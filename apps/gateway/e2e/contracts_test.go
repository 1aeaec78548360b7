package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/goplt/goplt/internal/routetable"
)

// responseSchemas compiles the response schemas of the platform's route table, by route.
func responseSchemas(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	b, err := os.ReadFile("../../../deploy/gateway/routes.json")
	if err != nil {
		t.Fatal(err)
	}
	var f routetable.File
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	out := map[string]*jsonschema.Schema{}
	for _, r := range f.Routes {
		if r.Response == nil {
			continue
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(f.Schemas[r.Response.Schema]))
		if err != nil {
			t.Fatal(err)
		}
		url := "https://goplt.dev/api/" + r.Response.Schema + ".json"
		_ = c.AddResource(url, doc) // the same schema for several routes: added once
		if out[r.Method+" "+r.Path], err = c.Compile(url); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// Every answer a route declares matches its schema and status on the real modules, and a body
// that breaks a request schema is refused at the gateway with a pointer, before the module.
func TestAnswersKeepTheirContracts(t *testing.T) {
	needStack(t)
	schemas := responseSchemas(t)
	checked := map[string]bool{}
	check := func(r response, status int, route string) {
		t.Helper()
		expect(t, r, status, route)
		sch := schemas[route]
		if sch == nil {
			t.Fatalf("%s declares no response schema", route)
		}
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(r.body))
		if err != nil {
			t.Fatalf("%s: %v", route, err)
		}
		if err := sch.Validate(v); err != nil {
			t.Errorf("%s answered %s\nwhich breaks its schema: %v", route, r.body, err)
		}
		checked[route] = true
	}
	u := editor(t)
	r := do(t, "POST", "/login", "", map[string]string{"email": u.Email, "password": u.Password})
	check(r, http.StatusOK, "POST /login")
	var tok struct{ AccessToken, RefreshToken string }
	r.decode(t, &tok)
	r = do(t, "POST", "/token/refresh", "", map[string]string{"refreshToken": tok.RefreshToken})
	check(r, http.StatusOK, "POST /token/refresh")
	r.decode(t, &tok)
	bearer := tok.AccessToken

	reg := do(t, "POST", "/users", "", map[string]string{"email": "contract-" + u.Email, "password": u.Password, "displayName": "Contract"})
	check(reg, http.StatusCreated, "POST /users")
	var me struct{ ID string }
	reg.decode(t, &me)
	adm := admin(t)
	check(do(t, "GET", "/users/"+me.ID, adm.tok.AccessToken, nil), http.StatusOK, "GET /users/{id}")
	check(do(t, "PATCH", "/users/"+me.ID, adm.tok.AccessToken, map[string]string{"displayName": "Renamed"}), http.StatusOK, "PATCH /users/{id}")

	r = do(t, "POST", "/blog/posts", bearer, map[string]string{"title": "Contract", "body": "kept"})
	check(r, http.StatusCreated, "POST /blog/posts")
	var p struct{ ID string }
	r.decode(t, &p)
	check(do(t, "PUT", "/blog/posts/"+p.ID, bearer, map[string]string{"title": "Contract 2", "body": "kept"}), http.StatusOK, "PUT /blog/posts/{id}")
	check(do(t, "POST", "/blog/posts/"+p.ID+"/publish", bearer, nil), http.StatusOK, "POST /blog/posts/{id}/publish")
	check(do(t, "GET", "/blog/posts/"+p.ID, "", nil), http.StatusOK, "GET /blog/posts/{id}")
	check(do(t, "GET", "/billing/subscription", bearer, nil), http.StatusOK, "GET /billing/subscription")
	check(do(t, "PUT", "/billing/subscription", bearer, map[string]string{"planId": "pro"}), http.StatusOK, "PUT /billing/subscription")
	grant(t, u, "blog.editor", "blog.reader", "billing.customer", "notes.writer")
	u.login(t)
	r = do(t, "POST", "/notes", u.tok.AccessToken, map[string]string{"text": "contract"})
	check(r, http.StatusCreated, "POST /notes")
	var n struct{ ID string }
	r.decode(t, &n)
	r = do(t, "GET", "/notes/"+n.ID, u.tok.AccessToken, nil)
	check(r, http.StatusOK, "GET /notes/{id}")
	check(do(t, "PUT", "/notes/"+n.ID, u.tok.AccessToken, map[string]string{"text": "changed"}, "If-Match", r.header.Get("ETag")), http.StatusOK, "PUT /notes/{id}")
	for route := range schemas {
		if !checked[route] {
			t.Errorf("%s declares a response schema this test does not check", route)
		}
	}

	// Request schemas, at the gateway: the module never sees these.
	for _, c := range []struct {
		method, path, body, pointer string
	}{
		{"POST", "/blog/posts", `{"title": 5}`, "/title"},
		{"POST", "/blog/posts", `{"body": "no title"}`, "/title"},
		{"POST", "/users", `{"email": "x@example.com", "password": "correct horse battery", "admin": true}`, "/admin"},
		{"PUT", "/users/" + me.ID + "/roles", `{"roles": ["blog.reader", 7]}`, "/roles/1"},
	} {
		token := bearer
		if c.path != "/blog/posts" {
			token = adm.tok.AccessToken
		}
		r := do(t, c.method, c.path, token, c.body)
		var e struct {
			Error struct{ Code, Pointer string }
		}
		_ = json.Unmarshal(r.body, &e)
		if r.status != http.StatusBadRequest || e.Error.Code != "invalid_body" || e.Error.Pointer != c.pointer {
			t.Errorf("%s %s %s: %d %s, want 400 invalid_body at %s", c.method, c.path, c.body, r.status, r.body, c.pointer)
		}
	}
}
