// Package telemetry checks what the platform exports, with a real OpenTelemetry Collector
// (tools/otelcol, built from the module proxy) writing every span it receives to a file: one
// request is one trace across the gateway, the apps, their SQL, the bus and the sidecars, and
// nothing secret is in it.
package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goplt/goplt/internal/localsecrets"
	"github.com/goplt/goplt/internal/platformsecrets"
	"github.com/goplt/goplt/internal/runner"
	"github.com/goplt/goplt/internal/stacktest"
)

var (
	stack   *stacktest.Stack
	group   *runner.Group
	spans   string // the collector's files: spans, metrics, logs
	metrics string
	logs    string
	gateway string // the gateway's URL
)

func TestMain(m *testing.M) {
	stacktest.Main(m, func(ctx context.Context, s *stacktest.Stack) (func(), error) {
		col, err := s.StartCollector(ctx)
		if err != nil {
			return nil, err
		}
		plan, err := s.LocalPlan(map[string]map[string]string{
			"gateway": {"GOPLT_GATEWAY_RATE_LIMITS": "default=1000:2000,subject=1000:2000,login=100:200,register=100:200"},
		}, "identity", "auth", "authz", "audit", "billing", "blog", "gateway")
		if err != nil {
			col.Stop()
			return nil, err
		}
		for i := range plan.Apps {
			if plan.Apps[i].ID == "gateway" {
				plan.Apps[i].AppPort = 0 // a free port, not 8080
			}
		}
		g, err := s.RunTraced(ctx, plan, col.Addr, "")
		if err != nil {
			col.Stop()
			return nil, err
		}
		stack, group, spans, metrics, logs = s, g, col.File, col.MetricsFile, col.LogsFile
		gateway = "http://127.0.0.1:" + strconv.Itoa(g.App("gateway").AppPort)
		return func() { g.Stop(); col.Stop() }, nil
	})
}

// span is one exported span, with its service.
type span struct {
	Service, Name, TraceID, SpanID, ParentSpanID string
	Kind                                         int
	Attributes                                   map[string]string
}

// readSpans parses the collector's file: one OTLP/JSON ExportTraceServiceRequest per line.
func readSpans(t *testing.T) []span {
	t.Helper()
	b, err := os.ReadFile(spans)
	if err != nil {
		t.Fatal(err)
	}
	type kv struct {
		Key   string
		Value map[string]any
	}
	var out []span
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var req struct {
			ResourceSpans []struct {
				Resource   struct{ Attributes []kv }
				ScopeSpans []struct {
					Spans []struct {
						TraceID, SpanID, ParentSpanID, Name string
						Kind                                int
						Attributes                          []kv
					}
				}
			}
		}
		if err := json.Unmarshal(line, &req); err != nil {
			t.Fatalf("the collector's file: %v", err)
		}
		for _, rs := range req.ResourceSpans {
			service := ""
			for _, a := range rs.Resource.Attributes {
				if a.Key == "service.name" {
					service = fmt.Sprint(a.Value["stringValue"])
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					attrs := map[string]string{}
					for _, a := range s.Attributes {
						for _, v := range a.Value {
							attrs[a.Key] = fmt.Sprint(v)
						}
					}
					out = append(out, span{Service: service, Name: s.Name, TraceID: s.TraceID, SpanID: s.SpanID, ParentSpanID: s.ParentSpanID, Kind: s.Kind, Attributes: attrs})
				}
			}
		}
	}
	return out
}

func post(t *testing.T, path string, body any, bearer string) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, gateway+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// One POST /users is one trace: the gateway's server span is its root, and it reaches
// identity's handler and SQL, the outbox write and the publish, the sidecars in between, and
// the handling by billing and audit on the other side of the broker. A login's password and
// token appear nowhere in what was exported.
func TestOneRequestOneTraceAcrossTheBus(t *testing.T) {
	if stack == nil {
		t.Skip("end-to-end: needs the real stack and a collector (run without -short)")
	}
	password := fmt.Sprintf("secret-pw-%d-horse-battery", time.Now().UnixNano())
	email := fmt.Sprintf("trace%d@example.com", time.Now().UnixNano())
	status, body := post(t, "/users", map[string]string{"email": email, "password": password, "displayName": "Traced"}, "")
	if status != http.StatusCreated {
		t.Fatalf("POST /users: %d %s", status, body)
	}
	status, body = post(t, "/login", map[string]string{"email": email, "password": password}, "")
	if status != http.StatusOK {
		t.Fatalf("POST /login: %d %s", status, body)
	}
	var tok struct{ AccessToken, RefreshToken string }
	_ = json.Unmarshal(body, &tok)

	// Every sidecar and app exports in its own batches: wait until the trace has them all.
	want := map[string]func(s span) bool{
		"the gateway's root span": func(s span) bool {
			return s.Service == "gateway" && s.Name == "POST /users" && s.ParentSpanID == ""
		},
		"identity's handler": func(s span) bool { return s.Service == "identity" && s.Name == "POST /users" && s.Kind == 2 },
		"identity's INSERT": func(s span) bool {
			return s.Service == "identity" && strings.Contains(s.Attributes["db.query.text"]+s.Attributes["db.statement"], "INSERT INTO")
		},
		"identity's outbox write":                func(s span) bool { return s.Service == "identity" && s.Name == "outbox identity.user.created" },
		"identity's publish":                     func(s span) bool { return s.Service == "identity" && s.Name == "publish identity.user.created" },
		"the gateway's sidecar calling identity": func(s span) bool { return s.Service == "gateway" && s.Name == "CallLocal/identity/users" },
		"identity's sidecar publishing":          func(s span) bool { return s.Service == "identity" && strings.HasSuffix(s.Name, "/PublishEvent") },
		"billing's sidecar delivering":           func(s span) bool { return s.Service == "billing" && s.Name == "pubsub/identity.user.created" },
		"billing's handling":                     func(s span) bool { return s.Service == "billing" && s.Name == "handle identity.user.created" },
		"audit's handling":                       func(s span) bool { return s.Service == "audit" && s.Name == "handle identity.user.created" },
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		all := readSpans(t)
		var trace string
		for _, s := range all {
			if want["the gateway's root span"](s) {
				trace = s.TraceID
			}
		}
		var missing []string
		var names []string
		for what, match := range want {
			found := false
			for _, s := range all {
				if s.TraceID == trace && match(s) {
					found = true
					break
				}
			}
			if !found {
				missing = append(missing, what)
			}
		}
		if len(missing) == 0 {
			for _, s := range all {
				if s.TraceID == trace {
					names = append(names, s.Service+": "+s.Name)
				}
			}
			t.Logf("trace %s: %d spans\n  %s", trace, len(names), strings.Join(names, "\n  "))
			break
		}
		if time.Now().After(deadline) {
			for _, s := range all {
				if s.TraceID == trace {
					names = append(names, fmt.Sprintf("%s: %s (kind %d, parent %q) %v", s.Service, s.Name, s.Kind, s.ParentSpanID, s.Attributes))
				}
			}
			t.Fatalf("trace %q lacks %v after 60 s; it has:\n  %s", trace, missing, strings.Join(names, "\n  "))
		}
		time.Sleep(500 * time.Millisecond)
	}

	exported, err := os.ReadFile(spans)
	if err != nil {
		t.Fatal(err)
	}
	m, err := os.ReadFile(metrics)
	if err != nil {
		t.Fatal(err)
	}
	exported = append(exported, m...)
	l, err := os.ReadFile(logs)
	if err != nil {
		t.Fatal(err)
	}
	exported = append(exported, l...)
	for what, secret := range map[string]string{"the password": password, "the access token": tok.AccessToken, "the refresh token": tok.RefreshToken} {
		if secret != "" && bytes.Contains(exported, []byte(secret)) {
			t.Errorf("%s is in the exported telemetry", what)
		}
	}
}

// Every app's metrics reach the collector over OTLP: identity's request durations by route
// and status, billing's and audit's events by topic and answer, the outbox's backlog, audit's
// chain length; and each kernel app serves the same at /metrics on its own port.
func TestMetricsReachTheCollector(t *testing.T) {
	if stack == nil {
		t.Skip("end-to-end: needs the real stack and a collector (run without -short)")
	}
	email := fmt.Sprintf("metrics%d@example.com", time.Now().UnixNano())
	if status, body := post(t, "/users", map[string]string{"email": email, "password": "correct horse battery staple", "displayName": "M"}, ""); status != http.StatusCreated {
		t.Fatalf("POST /users: %d %s", status, body)
	}
	want := map[string]string{
		"identity's POST /users durations": `"http.route","value":{"stringValue":"/users"}`,
		"billing's events handled":         `"goplt.events.handled"`,
		"the outbox's backlog":             `"goplt.outbox.backlog"`,
		"audit's chain length":             `"goplt.audit.chain.length"`,
		"the gateway's request durations":  `"service.name","value":{"stringValue":"gateway"}`,
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, err := os.ReadFile(metrics)
		if err != nil {
			t.Fatal(err)
		}
		var missing []string
		for what, s := range want {
			if !bytes.Contains(b, []byte(s)) {
				missing = append(missing, what)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the collector has no %v after 60 s", missing)
		}
		time.Sleep(time.Second)
	}
	// The Prometheus scrape on identity's own listener, without a token.
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(group.App("identity").AppPort) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`http_route="/users"`)) || !bytes.Contains(body, []byte("goplt_outbox_backlog")) {
		t.Fatalf("identity's /metrics: %d\n%.3000s", resp.StatusCode, body)
	}
}

// The apps' log lines reach the collector as OTLP log records, with their trace context: auth's
// "sessions revoked", written while it handles identity.user.deleted, carries the trace of
// the administrator's DELETE that caused it.
func TestLogsReachTheCollector(t *testing.T) {
	if stack == nil {
		t.Skip("end-to-end: needs the real stack and a collector (run without -short)")
	}
	email := fmt.Sprintf("leaving%d@example.com", time.Now().UnixNano())
	const pw = "correct horse battery staple"
	status, body := post(t, "/users", map[string]string{"email": email, "password": pw, "displayName": "L"}, "")
	var u struct{ ID string }
	if status != http.StatusCreated || json.Unmarshal(body, &u) != nil {
		t.Fatalf("POST /users: %d %s", status, body)
	}
	if status, body := post(t, "/login", map[string]string{"email": email, "password": pw}, ""); status != http.StatusOK {
		t.Fatalf("login: %d %s", status, body)
	}
	secrets, err := localsecrets.Read(stack.Endpoints().SecretsFile)
	if err != nil {
		t.Fatal(err)
	}
	adm := secrets[platformsecrets.BootstrapAdmin]
	status, body = post(t, "/login", map[string]string{"email": adm[platformsecrets.BootstrapAdminEmail], "password": adm[platformsecrets.BootstrapAdminPassword]}, "")
	var tok struct{ AccessToken string }
	if status != http.StatusOK || json.Unmarshal(body, &tok) != nil {
		t.Fatalf("admin login: %d %s", status, body)
	}
	req, _ := http.NewRequest(http.MethodDelete, gateway+"/users/"+u.ID, nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE /users/%s: %v %v", u.ID, resp, err)
	}
	resp.Body.Close()

	type record struct {
		Body    struct{ StringValue string }
		TraceID string
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, err := os.ReadFile(logs)
		if err != nil {
			t.Fatal(err)
		}
		var listening, revoked bool
		for _, line := range bytes.Split(b, []byte("\n")) {
			var req struct {
				ResourceLogs []struct {
					ScopeLogs []struct{ LogRecords []record }
				}
			}
			if json.Unmarshal(line, &req) != nil {
				continue
			}
			for _, rl := range req.ResourceLogs {
				for _, sl := range rl.ScopeLogs {
					for _, r := range sl.LogRecords {
						listening = listening || r.Body.StringValue == "listening"
						revoked = revoked || r.Body.StringValue == "sessions revoked" && len(r.TraceID) == 32
					}
				}
			}
		}
		if listening && revoked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the collector's logs: the apps' start lines %v, auth's \"sessions revoked\" with a trace id %v", listening, revoked)
		}
		time.Sleep(time.Second)
	}
}
