package kernel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/goplt/goplt/internal/contracts"
	"github.com/goplt/goplt/internal/eventsig"
	"github.com/goplt/goplt/internal/telemetry"
	"github.com/goplt/goplt/internal/token"
)

type testModule struct {
	name string
	init func(k *Kernel)
}

func (m testModule) Name() string         { return m.name }
func (m testModule) Init(k *Kernel) error { m.init(k); return nil }

// route declares pattern with access and serves it with h, as an app does with its generated
// route table.
func route(k *Kernel, pattern string, access Access, h http.HandlerFunc) {
	k.UseRoutes([]DeclaredRoute{{Pattern: pattern, Access: access}})
	k.HandleFunc(pattern, h)
}

func newTestKernel(t *testing.T, init func(k *Kernel)) *Kernel {
	t.Helper()
	return newTestKernelWith(t, telemetry.Off(), init)
}

// newTestKernelWith is newTestKernel with the given telemetry.
func newTestKernelWith(t *testing.T, tel *telemetry.Provider, init func(k *Kernel)) *Kernel {
	t.Helper()
	cfg := Config{AppID: "demo", AppAPIToken: "secret"}
	k := newKernel(cfg, testModule{name: "demo", init: init}, newLogger(io.Discard, cfg), tel)
	k.keys.signer = eventsig.NewStaticSigner("demo", testKey)
	k.keys.public = eventsig.NewKeyCache(func(context.Context) (map[string]string, error) {
		b, _ := json.Marshal(token.JWKS{Keys: []token.JWK{token.PublicJWK(testKey)}})
		return map[string]string{"demo": string(b)}, nil
	}, time.Minute, time.Millisecond)
	if err := k.module.Init(k); err != nil {
		t.Fatal(err)
	}
	if err := k.validate(); err != nil {
		t.Fatal(err)
	}
	return k
}

var testKey = func() token.Key {
	k, err := token.NewKey()
	if err != nil {
		panic(err)
	}
	return k
}()

// signed returns the CloudEvent for data on topic as the kernel of app "demo" publishes it.
func signed(t *testing.T, k *Kernel, topic, id, data string) string {
	t.Helper()
	b, err := k.keys.signer.Event(context.Background(), topic, id, []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func do(h http.Handler, method, path, body string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestSidecarTokenRequired(t *testing.T) {
	k := newTestKernel(t, func(k *Kernel) {
		k.DefinePermission("demo.thing.read", "")
		route(k, "GET /things", Access{Permission: "demo.thing.read"}, func(w http.ResponseWriter, r *http.Request) {
			WriteJSON(w, 200, map[string]string{"ok": "yes"})
		})
	})
	h := k.handler()
	for name, c := range map[string]struct {
		token string
		want  int
	}{"none": {"", 401}, "wrong": {"secreT", 401}, "prefix": {"secret2", 401}, "right": {"secret", 200}} {
		rec := do(h, "GET", "/things", "", map[string]string{"dapr-api-token": c.token})
		if rec.Code != c.want {
			t.Errorf("%s token: status %d, want %d (%s)", name, rec.Code, c.want, rec.Body)
		}
	}
	// Probes need no token, and /readyz is 503 until the app is started and connected.
	if rec := do(h, "GET", "/healthz", "", nil); rec.Code != 200 {
		t.Errorf("healthz: %d", rec.Code)
	}
	if rec := do(h, "GET", "/readyz", "", nil); rec.Code != 503 || !strings.Contains(rec.Body.String(), "sidecar") {
		t.Errorf("readyz before start: %d %s", rec.Code, rec.Body)
	}
}

// /metrics answers without a token, in Prometheus' format: each route's request durations by
// route pattern and status code, and each subscription's answers by topic and status.
func TestMetricsScrape(t *testing.T) {
	tel, err := telemetry.New(context.Background(), "demo", 0, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	k := newTestKernelWith(t, tel, func(k *Kernel) {
		k.DefinePermission("demo.thing.read", "")
		route(k, "GET /things/{id}", Access{Permission: "demo.thing.read"}, func(w http.ResponseWriter, r *http.Request) {
			WriteJSON(w, 200, map[string]string{"ok": "yes"})
		})
		k.Subscribe("demo.thing.made", "/events/made", func(ctx context.Context, e Event) error { return nil })
	})
	h := k.handler()
	for range 3 {
		do(h, "GET", "/things/42", "", map[string]string{"dapr-api-token": "secret"})
	}
	k.countEvent(context.Background(), k.subs[0], Event{ID: "1", Time: time.Now().Add(-time.Second).Format(time.RFC3339Nano)}, "SUCCESS")
	rec := do(h, "GET", "/metrics", "", nil)
	body := rec.Body.String()
	for _, want := range []string{
		`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/things/{id}"`,
		`goplt_events_handled_total{messaging_destination_name="demo.thing.made",status="SUCCESS"`,
		`goplt_events_lag_seconds_bucket{messaging_destination_name="demo.thing.made"`,
	} {
		if rec.Code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics (%d) lacks %s:\n%s", rec.Code, want, body)
		}
	}
}

func TestRequestID(t *testing.T) {
	var seen string
	k := newTestKernel(t, func(k *Kernel) {
		route(k, "GET /id", Access{Public: true}, func(w http.ResponseWriter, r *http.Request) { seen = RequestID(r.Context()) })
	})
	h := k.handler()
	tok := map[string]string{"dapr-api-token": "secret", "X-Request-ID": "abc-123"}
	if rec := do(h, "GET", "/id", "", tok); rec.Header().Get("X-Request-ID") != "abc-123" || seen != "abc-123" {
		t.Errorf("valid id not kept: header %q, ctx %q", rec.Header().Get("X-Request-ID"), seen)
	}
	tok["X-Request-ID"] = "evil\nid<script>"
	rec := do(h, "GET", "/id", "", tok)
	if got := rec.Header().Get("X-Request-ID"); got == "" || strings.ContainsAny(got, "\n<") || got != seen {
		t.Errorf("invalid id not replaced: %q (ctx %q)", got, seen)
	}
}

func TestUnknownRouteAndPanicGiveJSONErrors(t *testing.T) {
	k := newTestKernel(t, func(k *Kernel) {
		route(k, "GET /boom", Access{Public: true}, func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	})
	h := k.handler()
	tok := map[string]string{"dapr-api-token": "secret"}
	if rec := do(h, "GET", "/nope", "", tok); rec.Code != 404 || !strings.Contains(rec.Body.String(), `"code":"not_found"`) {
		t.Errorf("unknown route: %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "GET", "/boom", "", tok); rec.Code != 500 || !strings.Contains(rec.Body.String(), `"code":"internal"`) {
		t.Errorf("panic: %d %s", rec.Code, rec.Body)
	}
}

func TestEventStatuses(t *testing.T) {
	results := map[string]error{"ok": nil, "poison": ErrDrop, "db": errors.New("db down")}
	k := newTestKernel(t, func(k *Kernel) {
		k.Subscribe("demo.thing.made", "/events/made", func(ctx context.Context, e Event) error {
			var p struct{ Kind string }
			if err := e.Decode(&p); err != nil {
				return errors.Join(ErrDrop, err)
			}
			return results[p.Kind]
		})
	})
	h := k.handler()
	tok := map[string]string{"dapr-api-token": "secret", "Content-Type": "application/cloudevents+json"}
	for _, c := range []struct {
		body   string
		status int
		want   string
	}{
		{signed(t, k, "demo.thing.made", "1", `{"kind":"ok"}`), 200, "SUCCESS"},
		{signed(t, k, "demo.thing.made", "2", `{"kind":"poison"}`), 200, "DROP"},
		{signed(t, k, "demo.thing.made", "3", `{"kind":"db"}`), 500, "RETRY"},
		{signed(t, k, "demo.thing.made", "4", `"not an object"`), 200, "DROP"},
		{`not json`, 200, "DROP"},
		{`{"id":"5","topic":"t","data":{"kind":"ok","pad":"` + strings.Repeat("x", maxEventBytes) + `"}}`, 200, "DROP"},
	} {
		rec := do(h, "POST", "/events/made", c.body, tok)
		if c.want == "DROP" && len(c.body) > maxEventBytes {
			// The same oversized event without a Content-Length (a chunked body).
			req := httptest.NewRequest("POST", "/events/made", io.MultiReader(strings.NewReader(c.body)))
			req.ContentLength = -1
			for k, v := range tok {
				req.Header.Set(k, v)
			}
			chunked := httptest.NewRecorder()
			h.ServeHTTP(chunked, req)
			if chunked.Code != c.status || !strings.Contains(chunked.Body.String(), c.want) {
				t.Errorf("oversized, chunked: %d %s", chunked.Code, chunked.Body)
			}
		}
		if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.want) {
			t.Errorf("%.80s: %d %s, want %d %s", c.body, rec.Code, rec.Body, c.status, c.want)
		}
	}
}

// A bulk delivery gets one status per entry: a single-event handler sees the entries one by
// one, a bulk handler sees them together, and an entry that does not decode or is over the
// size limit is dropped alone (a batch may be far larger than one event).
func TestBulkEventStatuses(t *testing.T) {
	results := map[string]error{"ok": nil, "poison": ErrDrop, "db": errors.New("db down")}
	kind := func(e Event) error {
		var p struct{ Kind string }
		if err := e.Decode(&p); err != nil {
			return errors.Join(ErrDrop, err)
		}
		return results[p.Kind]
	}
	var batches [][]string
	k := newTestKernel(t, func(k *Kernel) {
		k.Subscribe("demo.one", "/events/one", func(_ context.Context, e Event) error { return kind(e) })
		k.SubscribeBulk("demo.many", "/events/many", func(_ context.Context, es []Event) []error {
			var ids []string
			errs := make([]error, len(es))
			for i, e := range es {
				ids = append(ids, e.ID)
				errs[i] = kind(e)
			}
			batches = append(batches, ids)
			return errs
		})
	})
	h := k.handler()
	tok := map[string]string{"dapr-api-token": "secret", "Content-Type": "application/json"}
	huge := `{"id":"h","data":{"kind":"ok","pad":"` + strings.Repeat("x", maxEventBytes) + `"}}`
	bulk := func(topic string) string {
		return `{"id":"b","topic":"t","entries":[
		{"entryId":"e1","event":` + signed(t, k, topic, "1", `{"kind":"ok"}`) + `},
		{"entryId":"e2","event":` + signed(t, k, topic, "2", `{"kind":"poison"}`) + `},
		{"entryId":"e3","event":"not an event"},
		{"entryId":"e4","event":` + signed(t, k, topic, "4", `{"kind":"db"}`) + `},
		{"entryId":"e5","event":` + huge + `},
		{"entryId":"e6","event":{"id":"6","source":"demo","data":{"kind":"ok"}}}]}`
	}
	want := `{"statuses":[{"entryId":"e1","status":"SUCCESS"},{"entryId":"e2","status":"DROP"},{"entryId":"e3","status":"DROP"},{"entryId":"e4","status":"RETRY"},{"entryId":"e5","status":"DROP"},{"entryId":"e6","status":"DROP"}]}`
	for path, topic := range map[string]string{"/events/one": "demo.one", "/events/many": "demo.many"} {
		rec := do(h, "POST", path, bulk(topic), tok)
		if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != want {
			t.Errorf("%s: %d %s\nwant %s", path, rec.Code, rec.Body, want)
		}
	}
	if len(batches) != 1 || strings.Join(batches[0], ",") != "1,2,4" {
		t.Errorf("bulk handler saw batches %v, want one of 1,2,4", batches)
	}
	// A single delivery reaches the bulk handler as a batch of one.
	rec := do(h, "POST", "/events/many", signed(t, k, "demo.many", "5", `{"kind":"db"}`), tok)
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), "RETRY") || len(batches) != 2 {
		t.Errorf("single delivery to a bulk handler: %d %s, batches %v", rec.Code, rec.Body, batches)
	}
}

func TestDeclarationRules(t *testing.T) {
	noop := func(http.ResponseWriter, *http.Request) {}
	cases := map[string]struct {
		init func(k *Kernel)
		want string
	}{
		"no access":       {func(k *Kernel) { route(k, "GET /a", Access{}, noop) }, `needs a permission or public access`},
		"undeclared perm": {func(k *Kernel) { route(k, "GET /a", Access{Permission: "demo.a.read"}, noop) }, `"demo.a.read" is not declared`},
		"foreign perm":    {func(k *Kernel) { k.DefinePermission("blog.post.read", "") }, `must start with the module name "demo."`},
		"bad perm name":   {func(k *Kernel) { k.DefinePermission("demo.Read", "") }, `want <module>.<resource>.<action>`},
		"duplicate route": {func(k *Kernel) {
			route(k, "GET /a", Access{Public: true}, noop)
			route(k, "GET /a", Access{Public: true}, noop)
		}, `declared twice`},
		"two handlers": {func(k *Kernel) {
			route(k, "GET /a", Access{Public: true}, noop)
			k.HandleFunc("GET /a", noop)
		}, `route "GET /a" has two handlers`},
		"handler without a declared route": {func(k *Kernel) {
			route(k, "GET /a", Access{Public: true}, noop)
			k.HandleFunc("PUT /a", noop)
		}, `route "PUT /a" has a handler but the manifest declares no such route`},
		"declared route without a handler": {func(k *Kernel) {
			k.UseRoutes([]DeclaredRoute{{Pattern: "GET /a", Access: Access{Public: true}}})
		}, `route "GET /a" is declared in the manifest but Init registers no handler for it`},
		"no route table": {func(k *Kernel) { k.HandleFunc("GET /a", noop) }, `declares no route table: call k.UseRoutes(contract.Routes())`},
		"both":           {func(k *Kernel) { route(k, "GET /a", Access{Public: true, Permission: "x"}, noop) }, `public and permission`},
		"duplicate perms": {func(k *Kernel) {
			k.DefinePermissions(PermissionDecl{Name: "demo.a.read"}, PermissionDecl{Name: "demo.a.read"})
		}, `declared twice`},
		"bad migrations folder":       {func(k *Kernel) { k.Migrations(migrationsFS(nil), "../up") }, `migrations folder "../up"`},
		"internal outside /internal/": {func(k *Kernel) { route(k, "POST /x", Access{Callers: []string{"auth"}}, noop) }, `must be under /internal/`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			k := &Kernel{module: testModule{name: "demo", init: c.init}}
			_ = k.module.Init(k)
			err := k.validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v, want %q", err, c.want)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	env := map[string]string{"APP_ID": "demo", "APP_PORT": "8080", "APP_API_TOKEN": "t", "DAPR_GRPC_PORT": "50001"}
	get := func(k string) string { return env[k] }
	c, err := LoadConfig(nil, get)
	if err != nil || c.Validate() != nil {
		t.Fatalf("valid config: %v %v", err, c.Validate())
	}
	if c, _ := LoadConfig([]string{"--port", "9090"}, get); c.Port != 9090 {
		t.Errorf("flag does not override env: %d", c.Port)
	}
	env["APP_PORT"] = "eighty"
	delete(env, "APP_API_TOKEN")
	c, _ = LoadConfig(nil, get)
	err = c.Validate()
	if err == nil || !strings.Contains(err.Error(), "APP_PORT must be a port") || !strings.Contains(err.Error(), "APP_API_TOKEN is empty") {
		t.Errorf("want both problems reported, got %v", err)
	}
	if _, err := LoadConfig([]string{"--log-level", "loud"}, get); err == nil {
		t.Error("bad log level accepted")
	}
	if _, err := LoadConfig([]string{"--bogus"}, get); err == nil {
		t.Error("unknown flag accepted")
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	err := Run(context.Background(), testModule{name: "demo", init: func(*Kernel) {}}, nil, func(string) string { return "" }, io.Discard)
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("want a ConfigError, got %v", err)
	}
}

func TestRequireCaller(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	for _, tc := range []struct {
		callers []string
		caller  string
		want    int
	}{
		{[]string{"auth"}, "auth", http.StatusNoContent},
		{[]string{"auth"}, "console", http.StatusForbidden},
		{[]string{"auth"}, "", http.StatusForbidden},
		{[]string{"*"}, "billing", http.StatusNoContent},
		{[]string{"*"}, "", http.StatusForbidden}, // not from another app's sidecar
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/internal/x", nil)
		if tc.caller != "" {
			req.Header.Set("dapr-caller-app-id", tc.caller)
		}
		requireCaller(tc.callers, ok).ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("callers %v, caller %q: %d, want %d", tc.callers, tc.caller, rec.Code, tc.want)
		}
	}
}

// Only events signed by their source's key, for the topic they arrive on, reach a handler;
// the rest are dropped (to the dead-letter topic), except on a dead-letter subscription.
func TestForgedEventsAreRejected(t *testing.T) {
	var handled []string
	var dead []string
	canonical := map[string]string{}
	k := newTestKernel(t, func(k *Kernel) {
		k.Subscribe("demo.thing.made", "/events/made", func(_ context.Context, e Event) error {
			handled = append(handled, e.ID)
			c, err := e.CanonicalData()
			if err != nil {
				t.Errorf("canonical data of %s: %v", e.ID, err)
			}
			canonical[e.ID] = c
			return nil
		})
		k.SubscribeDeadLetters("demo.deadletter", "/events/dead", func(_ context.Context, e Event) error {
			dead = append(dead, e.ID)
			return nil
		})
	})
	h := k.handler()
	tok := map[string]string{"dapr-api-token": "secret", "Content-Type": "application/cloudevents+json"}
	edit := func(ce string, f func(m map[string]any)) string {
		var m map[string]any
		if err := json.Unmarshal([]byte(ce), &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return string(b)
	}
	good := signed(t, k, "demo.thing.made", "good", `{"user":"ann","n":1}`)
	other, _ := token.NewKey()
	for name, c := range map[string]struct {
		body string
		want string
	}{
		"genuine": {good, "SUCCESS"},
		// The sidecar may re-encode the envelope: key order and spacing do not matter.
		"re-encoded": {edit(signed(t, k, "demo.thing.made", "reenc", `{"n":1, "user":"ann"}`), func(map[string]any) {}), "SUCCESS"},
		"unsigned":   {edit(good, func(m map[string]any) { delete(m, eventsig.SignatureAttr); m["id"] = "unsigned" }), "DROP"},
		"data changed": {edit(good, func(m map[string]any) {
			m["data"] = map[string]any{"user": "bob", "n": 1}
			m["id"] = "changed"
		}), "DROP"},
		"other source": {edit(good, func(m map[string]any) { m["source"] = "identity" }), "DROP"},
		"other topic":  {signed(t, k, "demo.thing.deleted", "topic", `{}`), "DROP"},
		"unknown key": {func() string {
			ce := eventsig.CloudEvent{SpecVersion: "1.0", ID: "unknown", Source: "demo", Type: "demo.thing.made", Time: "2026-01-01T00:00:00Z", Data: json.RawMessage(`{}`), KeyID: other.ID}
			ce.Signature, _ = eventsig.Sign(other, eventsig.Envelope{ID: ce.ID, Source: ce.Source, Type: ce.Type, Topic: "demo.thing.made", Time: ce.Time, Data: ce.Data})
			b, _ := json.Marshal(ce)
			return string(b)
		}(), "DROP"},
	} {
		rec := do(h, "POST", "/events/made", c.body, tok)
		if !strings.Contains(rec.Body.String(), c.want) {
			t.Errorf("%s: %d %s, want %s", name, rec.Code, rec.Body, c.want)
		}
	}
	if strings.Join(handled, ",") != "good,reenc" && strings.Join(handled, ",") != "reenc,good" {
		t.Errorf("handled %v, want only the genuine events", handled)
	}
	// Handlers get the canonical form the signature covered, however the sidecar encoded it.
	if canonical["good"] != `{"n":1,"user":"ann"}` || canonical["reenc"] != `{"n":1,"user":"ann"}` {
		t.Errorf("canonical data %v", canonical)
	}
	rec := do(h, "POST", "/events/dead", `{"id":"dl","source":"mallory","data":{}}`, tok)
	if !strings.Contains(rec.Body.String(), "SUCCESS") || len(dead) != 1 {
		t.Errorf("dead-letter subscription: %d %s (saw %v)", rec.Code, rec.Body, dead)
	}
}

var testContracts = contracts.Set{
	Publishes: map[string]contracts.EventSchema{
		"demo.thing.made": {Version: 2, Schema: `{"type":"object","required":["version","id"],"properties":{"version":{"const":2},"id":{"type":"string","format":"uuid"}}}`},
	},
	Subscribes: map[string][]contracts.EventSchema{
		"demo.thing.made": {
			{Version: 1, Schema: `{"type":"object","required":["id"],"properties":{"version":{"const":1},"id":{"type":"string"}}}`},
			{Version: 2, Schema: `{"type":"object","required":["version","id"],"properties":{"version":{"const":2},"id":{"type":"string","format":"uuid"}}}`},
		},
	},
}

// A payload that breaks the contract is refused before it is published (nothing reaches the
// sidecar: there is none here), and a delivery the subscription cannot read is dead-lettered.
func TestContracts(t *testing.T) {
	var handled []string
	k := newTestKernel(t, func(k *Kernel) {
		k.UseContracts(testContracts)
		k.Subscribe("demo.thing.made", "/events/made", func(_ context.Context, e Event) error {
			handled = append(handled, e.ID)
			return nil
		})
	})
	ctx := context.Background()
	for name, c := range map[string]struct {
		topic string
		v     any
		want  string
	}{
		"undeclared topic": {"demo.other", map[string]any{"version": 2}, "not a topic the manifest publishes"},
		"missing field":    {"demo.thing.made", map[string]any{"version": 2}, "missing property 'id'"},
		"bad format":       {"demo.thing.made", map[string]any{"version": 2, "id": "nope"}, "is not valid uuid"},
	} {
		err := k.Publish(ctx, c.topic, "", c.v)
		if !errors.Is(err, contracts.ErrContract) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want a contract error with %q", name, err, c.want)
		}
	}
	h := k.handler()
	tok := map[string]string{"dapr-api-token": "secret", "Content-Type": "application/cloudevents+json"}
	for name, c := range map[string]struct {
		data, want string
	}{
		"v2":            {`{"version":2,"id":"7c9e6679-7425-40de-944b-e07fc1f90ae7"}`, "SUCCESS"},
		"v1 still read": {`{"version":1,"id":"x"}`, "SUCCESS"},
		"v3 unread":     {`{"version":3,"id":"x"}`, "DROP"},
		"v2 invalid":    {`{"version":2,"id":"not-a-uuid"}`, "DROP"},
	} {
		rec := do(h, "POST", "/events/made", signed(t, k, "demo.thing.made", name, c.data), tok)
		if !strings.Contains(rec.Body.String(), c.want) {
			t.Errorf("%s: %d %s, want %s", name, rec.Code, rec.Body, c.want)
		}
	}
	if len(handled) != 2 {
		t.Errorf("handled %v, want the two readable events", handled)
	}
}

// In a large batch each entry gets its own verdict.
func TestLargeBatchIsCheckedEntryByEntry(t *testing.T) {
	var handled int
	k := newTestKernel(t, func(k *Kernel) {
		k.SubscribeBulk("demo.many", "/events/many", func(_ context.Context, es []Event) []error {
			handled += len(es)
			return nil
		})
	})
	var b strings.Builder
	b.WriteString(`{"id":"b","topic":"t","entries":[`)
	var want []string
	for i := range 200 {
		if i > 0 {
			b.WriteString(",")
		}
		ce := signed(t, k, "demo.many", fmt.Sprint("e", i), fmt.Sprintf(`{"n":%d}`, i))
		status := "SUCCESS"
		if i%10 == 3 {
			ce = strings.Replace(ce, fmt.Sprintf(`"n":%d`, i), `"n":-1`, 1) // data changed after signing
			status = "DROP"
		}
		fmt.Fprintf(&b, `{"entryId":"e%d","event":%s}`, i, ce)
		want = append(want, fmt.Sprintf(`{"entryId":"e%d","status":"%s"}`, i, status))
	}
	b.WriteString("]}")
	rec := do(k.handler(), "POST", "/events/many", b.String(), map[string]string{"dapr-api-token": "secret", "Content-Type": "application/json"})
	if got := strings.TrimSpace(rec.Body.String()); got != `{"statuses":[`+strings.Join(want, ",")+`]}` {
		t.Errorf("statuses:\n%s", got)
	}
	if handled != 180 {
		t.Errorf("handler saw %d events, want the 180 genuine ones", handled)
	}
}
