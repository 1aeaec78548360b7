package notes_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"
	"github.com/jackc/pgx/v5"

	"github.com/goplt/goplt/apps/notes/notes"
	"github.com/goplt/goplt/internal/brokeracl"
	"github.com/goplt/goplt/internal/bustool"
	"github.com/goplt/goplt/internal/runner"
	"github.com/goplt/goplt/internal/runplan"
	"github.com/goplt/goplt/internal/stacktest"
)

// One real stack for the package: PostgreSQL, Kafka broker, Consul, Sentry, and the notes app
// with its sidecar, a "console" sidecar that notes' access control allows, and an "intruder"
// sidecar that it does not.
var (
	stack *stacktest.Stack
	group *runner.Group
)

func TestMain(m *testing.M) {
	stacktest.Main(m, func(ctx context.Context, s *stacktest.Stack) (func(), error) {
		plan, err := s.LocalPlan(nil, "notes", "console")
		if err != nil {
			return nil, err
		}
		plan.Apps = append(plan.Apps, runplan.App{ID: "intruder", Config: "deploy/local/config/console.yaml", DependsOn: []string{"notes"}})
		g, err := s.Run(ctx, plan)
		if err != nil {
			return nil, err
		}
		stack, group = s, g
		return g.Stop, nil
	})
}

func needStack(t *testing.T) {
	t.Helper()
	if stack == nil {
		t.Skip("integration test: needs the real stack (run without -short)")
	}
}

// invoke calls method on the notes app through the sidecar of caller.
func invoke(t *testing.T, caller, method, path string, body string) (int, []byte) {
	t.Helper()
	status, _, b := stacktest.Invoke(t, group.App(caller), "notes", method, path, body, nil)
	return status, b
}

func createNote(t *testing.T, text string) notes.Note {
	t.Helper()
	status, body := invoke(t, "console", http.MethodPost, "/notes", fmt.Sprintf(`{"text":%q}`, text))
	if status != http.StatusCreated {
		t.Fatalf("create note: %d %s", status, body)
	}
	var n notes.Note
	if err := json.Unmarshal(body, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The whole chain: console's sidecar resolves notes through Consul, calls notes' sidecar over
// mTLS, the app writes to its schema and publishes through the Kafka component; the event comes
// back through the declarative subscription and is recorded.
func TestInvokeStoreAndEventRoundTrip(t *testing.T) {
	needStack(t)
	n := createNote(t, "hello through every link")

	// The note is in the state store's table of the real database, under notes' key prefix.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, stack.Endpoints().PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var value []byte
	if err := conn.QueryRow(ctx, `SELECT value FROM state WHERE key = $1`, "notes||note-"+n.ID).Scan(&value); err != nil {
		t.Fatalf("note not in the state store's table: %v", err)
	}
	if !strings.Contains(string(value), `"text":"hello through every link"`) {
		t.Fatalf("stored value = %s", value)
	}

	// The event went through the broker and came back to the subscriber.
	deadline := time.Now().Add(45 * time.Second)
	for {
		status, body := invoke(t, "console", http.MethodGet, "/notes/"+n.ID, "")
		if status != http.StatusOK {
			t.Fatalf("get note: %d %s", status, body)
		}
		var got notes.Note
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		if got.Delivered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the note's event never came back through Kafka")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Each of notes' instances (replicas: 2) registered itself in Consul under the one app id,
// with the sidecar port callers resolve to.
func TestConsulRegistration(t *testing.T) {
	needStack(t)
	cl, err := consul.NewClient(&consul.Config{Address: stack.Endpoints().ConsulHTTP})
	if err != nil {
		t.Fatal(err)
	}
	entries, _, err := cl.Health().Service("notes", "", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	instances := group.Instances("notes")
	if len(entries) != len(instances) || len(instances) != 2 {
		t.Fatalf("passing notes instances in consul = %d, started %d, want 2", len(entries), len(instances))
	}
	for _, a := range instances {
		found := false
		for _, e := range entries {
			if e.Service.ID == a.ConsulID() {
				found = true
				if got, want := e.Service.Meta["DAPR_PORT"], fmt.Sprint(a.InternalGRPCPort); got != want {
					t.Errorf("%s: registered DAPR_PORT = %q, want its internal gRPC port %s", a.Name(), got, want)
				}
			}
		}
		if !found {
			t.Errorf("%s (%s) is not registered", a.Name(), a.ConsulID())
		}
	}
}

// A sidecar whose app notes' access control does not allow is refused, and the refusal names
// the caller's SPIFFE identity, which exists only through the mTLS certificate Sentry issued.
func TestAccessControlRefusesOtherApp(t *testing.T) {
	needStack(t)
	status, body := invoke(t, "intruder", http.MethodPost, "/notes", `{"text":"should not land"}`)
	if status != http.StatusForbidden {
		t.Fatalf("intruder got %d %s, want 403", status, body)
	}
	if !strings.Contains(string(body), "spiffe://public/ns/default/intruder") {
		t.Errorf("refusal does not name the mTLS identity of the caller: %s", body)
	}
}

// Nothing but notes' own sidecar can drive the app: a direct call without the app API token
// is refused, as is a call to a sidecar without its Dapr API token.
func TestTokensKeepOtherProcessesOut(t *testing.T) {
	needStack(t)
	notesApp := group.App("notes")
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/notes", notesApp.AppPort), "application/json", strings.NewReader(`{"text":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), `"not_from_sidecar"`) {
		t.Errorf("direct call to the app: %d %s, want 401 not_from_sidecar", resp.StatusCode, b)
	}
	resp, err = http.Post(group.App("console").DaprHTTP()+"/v1.0/invoke/notes/method/notes", "application/json", strings.NewReader(`{"text":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("call to a sidecar without its API token: %d, want 401", resp.StatusCode)
	}
}

// Bad input through the whole chain gets a 4xx with a stable code, and nothing is written.
func TestBadInputIsRefused(t *testing.T) {
	needStack(t)
	for _, c := range []struct{ body, code string }{
		{`{"text":""}`, "invalid_text"},
		{`{"text":"a","extra":1}`, "invalid_json"},
		{`{"text":`, "invalid_json"},
		{`{"text":"` + strings.Repeat("a", 70<<10) + `"}`, "body_too_large"},
	} {
		status, body := invoke(t, "console", http.MethodPost, "/notes", c.body)
		if status < 400 || status > 499 || !strings.Contains(string(body), `"`+c.code+`"`) {
			t.Errorf("body %.40q: %d %s, want 4xx %s", c.body, status, body, c.code)
		}
	}
	status, body := invoke(t, "console", http.MethodGet, "/notes/00000000-0000-0000-0000-000000000000", "")
	if status != http.StatusNotFound || !strings.Contains(string(body), "note_not_found") {
		t.Errorf("unknown note: %d %s", status, body)
	}
}

// When the app dies, the runner says so and restarts it (restart policy on-failure), and calls
// work again.
func TestCrashedAppIsRestarted(t *testing.T) {
	needStack(t)
	a := group.App("notes")
	old := a.Process()
	if err := old.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	<-old.Done()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if p := a.Process(); p != old && p != nil {
			status, _ := invoke(t, "console", http.MethodGet, "/notes/00000000-0000-0000-0000-000000000000", "")
			if status == http.StatusNotFound {
				return // the restarted app answered
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("notes was not restarted within 60s")
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// goplt events publish and tail (package bustool): an event published from outside as notes
// is handled by notes' subscriber like its own; tail shows it and a sidecar-published one
// verified; an app without a broker user cannot publish.
func TestEventsFromTheCommandLine(t *testing.T) {
	needStack(t)
	ctx := context.Background()
	acl, err := brokeracl.Load(filepath.Join(stack.Root, brokeracl.LocalFile))
	if err != nil {
		t.Fatal(err)
	}
	bus := bustool.Bus{Brokers: stack.Endpoints().KafkaBrokers, SecretsFile: stack.Endpoints().SecretsFile, ACLs: acl}
	var u [16]byte
	_, _ = rand.Read(u[:])
	noteID := fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	id := "cli-" + noteID
	ev, err := bus.Publish(ctx, "notes", notes.Topic, id, []byte(`{"noteId":"`+noteID+`","text":"from the command line"}`))
	if err != nil {
		t.Fatal(err)
	}
	// notes handles it like its own: it looks the note up (there is none: nothing to mark),
	// and its consumer group moves past the event.
	wctx, wcancel := context.WithTimeout(ctx, 45*time.Second)
	defer wcancel()
	if err := bus.WaitHandled(wctx, "notes", ev, 200*time.Millisecond); err != nil {
		t.Fatalf("notes never handled the event published as notes: %v", err)
	}

	n := createNote(t, "tail me")
	want := map[string]bool{id: true, "note-" + n.ID: true}
	found := map[string]error{}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = bus.Tail(tctx, notes.Topic, bustool.TailOptions{FromStart: true}, func(ev bustool.Event) error {
		if want[ev.ID] {
			found[ev.ID] = ev.Verified
			if len(found) == len(want) {
				cancel()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for id := range want {
		if v, ok := found[id]; !ok || v != nil {
			t.Errorf("tail: event %s found %v, verification %v; want found and verified", id, ok, v)
		}
	}

	// console publishes nothing, so it has no broker user to write with.
	if _, err := bus.Publish(ctx, "console", notes.Topic, "forged-"+noteID, []byte(`{"noteId":"`+noteID+`","text":"x"}`)); err == nil || !strings.Contains(err.Error(), "no broker user") {
		t.Errorf("publish as console: %v, want no broker user", err)
	}
}
