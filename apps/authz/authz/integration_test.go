package authz_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/goplt/goplt/apps/authz/client"
	"github.com/goplt/goplt/internal/invoke"
	"github.com/goplt/goplt/internal/runner"
	"github.com/goplt/goplt/internal/stacktest"
)

// The real stack with authz and a console sidecar. Polling is off (1h), so a change made
// elsewhere can only arrive through the broadcast event.
var (
	stack *stacktest.Stack
	group *runner.Group
)

func TestMain(m *testing.M) {
	stacktest.Main(m, func(ctx context.Context, s *stacktest.Stack) (func(), error) {
		plan, err := s.LocalPlan(map[string]map[string]string{"authz": {"GOPLT_AUTHZ_POLL": "1h"}}, "authz", "console")
		if err != nil {
			return nil, err
		}
		g, err := s.Run(ctx, plan)
		if err != nil {
			return nil, err
		}
		stack, group = s, g
		return g.Stop, nil
	})
}

func needStack(t testing.TB) {
	t.Helper()
	if stack == nil {
		t.Skip("integration test: needs the real stack (run without -short)")
	}
}

func authz(timeout time.Duration) *client.Client {
	c := group.App("console")
	return client.New(invoke.New(c.HTTPPort, c.DaprAPIToken), timeout)
}

func call(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	status, _, b := stacktest.Invoke(t, group.App("console"), "authz", method, path, body, nil)
	return status, string(b)
}

func TestRoleGrantsDecideAsDeclared(t *testing.T) {
	needStack(t)
	ctx := context.Background()
	a := authz(2 * time.Second)
	for _, tc := range []struct {
		name string
		q    client.Check
		want bool
	}{
		{"admin deletes users", client.Check{Subject: client.Subject{User: "u1", Roles: []string{"identity.admin"}}, Action: "identity.user.delete", Resource: "identity:user:9"}, true},
		{"viewer reads users", client.Check{Subject: client.Subject{User: "u1", Roles: []string{"identity.viewer"}}, Action: "identity.user.read", Resource: "identity:user:9"}, true},
		{"viewer may not delete", client.Check{Subject: client.Subject{User: "u1", Roles: []string{"identity.viewer"}}, Action: "identity.user.delete", Resource: "identity:user:9"}, false},
		{"no roles", client.Check{Subject: client.Subject{User: "u1"}, Action: "identity.user.read"}, false},
		{"no subject", client.Check{Action: "identity.user.read"}, false},
		{"unknown permission", client.Check{Subject: client.Subject{Roles: []string{"identity.admin"}}, Action: "identity.user.obliterate"}, false},
		{"notes writer", client.Check{Subject: client.Subject{Roles: []string{"notes.writer"}}, Action: "notes.note.create"}, true},
	} {
		d := a.Check(ctx, tc.q)
		if d.Allowed != tc.want || d.Reason == "" {
			t.Errorf("%s: %+v, want allowed=%v", tc.name, d, tc.want)
		}
	}
	// The batch form answers in order.
	ds := a.CheckBatch(ctx, []client.Check{
		{Subject: client.Subject{Roles: []string{"identity.viewer"}}, Action: "identity.user.read"},
		{Subject: client.Subject{Roles: []string{"identity.viewer"}}, Action: "identity.user.delete"},
	})
	if len(ds) != 2 || !ds[0].Allowed || ds[1].Allowed {
		t.Fatalf("batch: %+v", ds)
	}
	// Malformed requests are refused; the client turns that into a deny.
	status, body := call(t, http.MethodPost, "/internal/decisions", `{"subject":"root","action":1}`)
	if status != http.StatusBadRequest || !strings.Contains(body, "invalid_json") {
		t.Fatalf("malformed check: %d %s", status, body)
	}
}

func putPolicy(t *testing.T, id, doc string) {
	t.Helper()
	status, body := call(t, http.MethodPut, "/authz/policies/"+id, doc)
	if status != http.StatusOK {
		t.Fatalf("put policy %s: %d %s", id, status, body)
	}
}

func TestOwnerCondition(t *testing.T) {
	needStack(t)
	putPolicy(t, "self-update", `{"description":"users may update their own profile","subjects":["user:<.+>"],
		"actions":["identity.user.update"],"resources":["identity:user:<.+>"],"effect":"allow",
		"conditions":{"owner":{"type":"EqualsSubjectCondition","options":{}}}}`)
	a := authz(2 * time.Second)
	ctx := context.Background()
	check := func(user, owner string) bool {
		return a.Check(ctx, client.Check{Subject: client.Subject{User: user}, Action: "identity.user.update",
			Resource: "identity:user:" + owner, Context: map[string]any{"owner": "user:" + owner}}).Allowed
	}
	if !check("alice", "alice") {
		t.Error("the owner may not update her own user")
	}
	if check("bob", "alice") {
		t.Error("another user may update alice")
	}
	status, _ := call(t, http.MethodDelete, "/authz/policies/self-update", "")
	if status != http.StatusNoContent {
		t.Fatalf("delete: %d", status)
	}
	if check("alice", "alice") {
		t.Error("a deleted policy still allows")
	}
}

func TestDangerousPoliciesAreRefused(t *testing.T) {
	needStack(t)
	for name, doc := range map[string]string{
		"nested quantifier": `{"subjects":["user:<(a+)+>"],"actions":["identity.user.read"],"resources":["<.*>"],"effect":"allow"}`,
		"backreference":     `{"subjects":["user:<(a)\\1>"],"actions":["identity.user.read"],"resources":["<.*>"],"effect":"allow"}`,
		"unknown condition": `{"subjects":["user:a"],"actions":["identity.user.read"],"resources":["<.*>"],"effect":"allow","conditions":{"x":{"type":"NoSuchCondition"}}}`,
		"unknown field":     `{"subjects":["user:a"],"actions":["identity.user.read"],"resources":["<.*>"],"effect":"allow","priority":1}`,
		"bad effect":        `{"subjects":["user:a"],"actions":["identity.user.read"],"resources":["<.*>"],"effect":"permit"}`,
	} {
		status, body := call(t, http.MethodPut, "/authz/policies/bad-one", doc)
		if status != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", name, status, body)
		}
	}
	if status, _ := call(t, http.MethodGet, "/authz/policies/bad-one", ""); status != http.StatusNotFound {
		t.Errorf("a refused policy was stored (%d)", status)
	}
	if status, body := call(t, http.MethodPut, "/authz/policies/role:identity.admin", `{"subjects":["user:a"],"actions":["identity.user.read"],"resources":["<.*>"],"effect":"deny"}`); status != http.StatusBadRequest {
		t.Errorf("overriding a compiled role policy: %d %s", status, body)
	}
}

// A change written by another replica (straight into the database here) reaches this one
// through the broadcast event alone: polling is off.
func TestPolicyChangePropagatesByEvent(t *testing.T) {
	needStack(t)
	ctx := context.Background()
	a := authz(2 * time.Second)
	q := client.Check{Subject: client.Subject{User: "carol"}, Action: "identity.user.read", Resource: "identity:user:1"}
	if a.Check(ctx, q).Allowed {
		t.Fatal("carol allowed before any policy")
	}
	conn, err := pgx.Connect(ctx, stack.Endpoints().PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	doc := `{"id":"carol-reads","subjects":["user:carol"],"actions":["identity.user.read"],"resources":["<.*>"],"effect":"allow"}`
	var rev int64
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT nextval('authz.policy_revision')`).Scan(&rev); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO authz.policies (id, revision, document) VALUES ('carol-reads', $1, $2)`, rev, doc); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO authz.policy_history (revision, id, op, document) VALUES ($1, 'carol-reads', 'put', $2)`, rev, doc)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if a.Check(ctx, q).Allowed {
		t.Fatal("the change arrived without an event: the test cannot tell the event path apart")
	}
	publish(t, client.TopicPolicyChanged, client.PolicyChange{Version: 1, PolicyID: "carol-reads", Op: "put", Revision: rev, At: time.Now()})
	deadline := time.Now().Add(30 * time.Second)
	for !a.Check(ctx, q).Allowed {
		if time.Now().After(deadline) {
			t.Fatal("the policy change did not reach authz through its event within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// publish puts a CloudEvent on topic straight into the broker, as another replica's sidecar would.
func publish(t *testing.T, topic string, data any) {
	t.Helper()
	ce, err := stack.SignedEvent("authz", topic, fmt.Sprint(time.Now().UnixNano()), data)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := stack.KafkaClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Value: ce}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// Callers fail closed: a hung authz (stopped process) and a timeout both deny.
func TestAuthzDownOrSlowDenies(t *testing.T) {
	needStack(t)
	ctx := context.Background()
	q := client.Check{Subject: client.Subject{Roles: []string{"identity.admin"}}, Action: "identity.user.read"}
	if !authz(2*time.Second).Check(ctx, q).Allowed {
		t.Fatal("control: admin denied")
	}
	app := group.App("authz").Process()
	if err := app.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	d := authz(300*time.Millisecond).Check(ctx, q)
	took := time.Since(start)
	if err := app.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if d.Allowed || !strings.Contains(d.Reason, "authz unavailable") {
		t.Fatalf("hung authz: %+v, want a deny", d)
	}
	if took > 2*time.Second {
		t.Fatalf("the caller waited %s on a hung authz", took)
	}
	// And an authz that is not there at all.
	c := group.App("console")
	gone := client.New(invoke.New(c.HTTPPort+10000, c.DaprAPIToken), 300*time.Millisecond)
	if d := gone.Check(ctx, q); d.Allowed {
		t.Fatalf("unreachable sidecar: %+v", d)
	}
}

// BenchmarkCheckThroughSidecars is a decision as a module sees it: its sidecar -> authz's
// sidecar (mTLS) -> authz.
func BenchmarkCheckThroughSidecars(b *testing.B) {
	needStack(b)
	a := authz(2 * time.Second)
	ctx := context.Background()
	q := client.Check{Subject: client.Subject{User: "u1", Roles: []string{"identity.viewer"}}, Action: "identity.user.read", Resource: "identity:user:1"}
	b.SetParallelism(8) // 16 requests in flight on 2 cores: throughput, not one caller's latency
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !a.Check(ctx, q).Allowed {
				b.Fatal("denied")
			}
		}
	})
}
