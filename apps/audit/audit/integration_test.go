package audit_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/goplt/goplt/apps/audit/audit"
	"github.com/goplt/goplt/apps/audit/chain"
	auditclient "github.com/goplt/goplt/apps/audit/client"
	auth "github.com/goplt/goplt/apps/auth/client"
	identity "github.com/goplt/goplt/apps/identity/client"
	"github.com/goplt/goplt/internal/envvar"
	"github.com/goplt/goplt/internal/invoke"
	"github.com/goplt/goplt/internal/localsecrets"
	"github.com/goplt/goplt/internal/platformsecrets"
	"github.com/goplt/goplt/internal/runner"
	"github.com/goplt/goplt/internal/stacktest"
)

// The real stack with identity, auth and audit (checkpoints every 300 ms), and a console
// sidecar.
var (
	stack  *stacktest.Stack
	group  *runner.Group
	topics *stacktest.Topics
	remote = newRemoteWitness()
)

func TestMain(m *testing.M) {
	stacktest.Main(m, func(ctx context.Context, s *stacktest.Stack) (func(), error) {
		plan, err := s.LocalPlan(map[string]map[string]string{"audit": {
			"GOPLT_AUDIT_CHECKPOINT_EVERY": "300ms", envvar.AuditWitnessURL: remote.URL,
		}}, "identity", "auth", "audit", "console")
		if err != nil {
			return nil, err
		}
		t, err := s.Consume(audit.Topics()...)
		if err != nil {
			return nil, err
		}
		g, err := s.Run(ctx, plan)
		if err != nil {
			t.Close()
			return nil, err
		}
		stack, group, topics = s, g, t
		return func() { g.Stop(); t.Close() }, nil
	})
}

func needStack(t testing.TB) {
	t.Helper()
	if stack == nil {
		t.Skip("integration test: needs the real stack (run without -short)")
	}
}

func get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	status, _, b := stacktest.Invoke(t, group.App("console"), "audit", http.MethodGet, path, "", nil)
	return status, b
}

func db(t testing.TB) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), stack.Endpoints().PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// activity makes identity and auth publish: a registration, a failed and a good login, a
// refresh and a logout. It returns the user.
func activity(t *testing.T) *identity.User {
	t.Helper()
	c := group.App("console")
	inv := invoke.New(c.HTTPPort, c.DaprAPIToken)
	ctx := context.Background()
	pw := "correct horse battery staple"
	u, err := identity.New(inv).Register(ctx, identity.Registration{Email: fmt.Sprintf("a%d@example.com", time.Now().UnixNano()), Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	a := auth.New(inv)
	if _, err := a.Login(ctx, u.Email, "wrong password!!", ""); err == nil {
		t.Fatal("wrong password accepted")
	}
	tok, err := a.Login(ctx, u.Email, pw, "")
	if err != nil {
		t.Fatal(err)
	}
	tok2, err := a.Refresh(ctx, tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Logout(ctx, tok2.RefreshToken); err != nil {
		t.Fatal(err)
	}
	return u
}

// eventIDs returns the ids of the events on audit's topics that mention s.
func eventIDs(s string) map[string]stacktest.CloudEvent {
	out := map[string]stacktest.CloudEvent{}
	for _, topic := range audit.Topics() {
		for _, e := range topics.All(topic) {
			if strings.Contains(string(e.Data), s) {
				out[e.ID] = e
			}
		}
	}
	return out
}

func waitRecorded(t *testing.T, conn *pgx.Conn, ids map[string]stacktest.CloudEvent) {
	t.Helper()
	list := make([]string, 0, len(ids))
	for id := range ids {
		list = append(list, id)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var n int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM audit.log WHERE event_id = ANY($1)`, list).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == len(list) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events recorded within 60s", n, len(list))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Events from identity and auth land in audit exactly once, even when the broker delivers
// them again and audit is killed mid-stream.
func TestEventsLandExactlyOnce(t *testing.T) {
	needStack(t)
	u := activity(t)
	time.Sleep(2 * time.Second) // let the outbox relays publish
	ids := eventIDs(u.ID)
	for id, e := range eventIDs(u.Email) {
		ids[id] = e
	}
	if len(ids) < 5 { // created, login failed, login succeeded, refreshed, revoked
		t.Fatalf("only %d events seen on the topics for the activity", len(ids))
	}
	conn := db(t)
	waitRecorded(t, conn, ids)

	// Forced redelivery: the same CloudEvents again, straight into the broker ...
	// (replays of the genuine, signed events as they are on the topics)
	cl, err := stack.KafkaClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, e := range ids {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: e.Topic, Value: e.Raw}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// ... and audit killed while they arrive (the runner restarts it; Dapr redelivers what was
	// in flight).
	if err := group.App("audit").Process().Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	more := activity(t)
	time.Sleep(2 * time.Second)
	for id, e := range eventIDs(more.ID) {
		ids[id] = e
	}
	waitRecorded(t, conn, ids)
	time.Sleep(2 * time.Second) // give duplicates time to arrive, had they a chance to land
	list := make([]string, 0, len(ids))
	for id := range ids {
		list = append(list, id)
	}
	var rows, distinct int
	if err := conn.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT event_id) FROM audit.log WHERE event_id = ANY($1)`, list).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != len(list) || distinct != len(list) {
		t.Fatalf("%d rows (%d distinct) for %d events, want exactly one each", rows, distinct, len(list))
	}
}

func TestQueryAndExport(t *testing.T) {
	needStack(t)
	u := activity(t)
	time.Sleep(time.Second)
	waitRecorded(t, db(t), eventIDs(u.ID))
	actor := url.QueryEscape("user:" + u.ID)
	status, body := get(t, "/audit/entries?actor="+actor)
	if status != http.StatusOK {
		t.Fatalf("query: %d %s", status, body)
	}
	var page struct {
		Entries []struct {
			Pos     int64           `json:"pos"`
			Actor   string          `json:"actor"`
			Action  string          `json:"action"`
			Outcome string          `json:"outcome"`
			Payload json.RawMessage `json:"payload"`
		} `json:"entries"`
		NextCursor string `json:"nextCursor"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Entries) < 3 {
		t.Fatalf("%d entries for the user, want at least created, login, refresh", len(page.Entries))
	}
	for _, e := range page.Entries {
		if e.Actor != "user:"+u.ID || !json.Valid(e.Payload) {
			t.Fatalf("entry %+v", e)
		}
	}
	// Pagination: one at a time reaches the same entries.
	var seen int
	cursor := ""
	for {
		status, body := get(t, "/audit/entries?limit=1&actor="+actor+"&cursor="+cursor)
		if status != http.StatusOK {
			t.Fatalf("page: %d %s", status, body)
		}
		var p struct {
			Entries    []json.RawMessage `json:"entries"`
			NextCursor string            `json:"nextCursor"`
		}
		_ = json.Unmarshal(body, &p)
		seen += len(p.Entries)
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	if seen != len(page.Entries) {
		t.Fatalf("paging saw %d entries, one page %d", seen, len(page.Entries))
	}
	// Failed logins by outcome and action, in a time range.
	from := url.QueryEscape(time.Now().Add(-time.Hour).Format(time.RFC3339))
	status, body = get(t, "/audit/entries?outcome=failure&action=auth.login.failed&from="+from)
	if status != http.StatusOK || !strings.Contains(string(body), u.Email) {
		t.Fatalf("failed logins: %d %.300s", status, body)
	}
	// Export: JSON lines, one per entry.
	status, body = get(t, "/audit/export?actor="+actor)
	lines := 0
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if !json.Valid(sc.Bytes()) {
			t.Fatalf("export line not JSON: %s", sc.Text())
		}
		lines++
	}
	if status != http.StatusOK || lines != len(page.Entries) {
		t.Fatalf("export: %d, %d lines, want %d", status, lines, len(page.Entries))
	}
	for _, bad := range []string{"/audit/entries?cursor=zzz", "/audit/entries?limit=0", "/audit/entries?from=yesterday"} {
		if status, _ := get(t, bad); status != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", bad, status)
		}
	}
}

// An event audit can never record goes to the dead-letter topic and shows in the API.
func TestPoisonEventIsDeadLettered(t *testing.T) {
	needStack(t)
	id := fmt.Sprintf("poison-%d", time.Now().UnixNano())
	ce, err := stack.SignedEvent("auth", "auth.login.failed", id, "not an object")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := stack.KafkaClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "auth.login.failed", Value: ce}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitDeadLetter(t, id)
	var n int
	if err := db(t).QueryRow(context.Background(), `SELECT count(*) FROM audit.log WHERE event_id = $1`, id).Scan(&n); err != nil || n != 0 {
		t.Fatalf("poison event in the log (%d, %v)", n, err)
	}
}

// waitDeadLetter waits up to a minute for audit's dead-letter API to list the event id.
func waitDeadLetter(t *testing.T, id string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		status, body := get(t, "/audit/dead-letters")
		if status == http.StatusOK && strings.Contains(string(body), id) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %s not in the dead letters within 60s: %d %.300s", id, status, body)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func checkpointKey(t testing.TB) ed25519.PublicKey {
	f, err := localsecrets.Read(stack.Endpoints().SecretsFile)
	if err != nil {
		t.Fatal(err)
	}
	k, err := platformsecrets.CheckpointKey(f[platformsecrets.AuditCheckpointKey][platformsecrets.AuditCheckpointSeed])
	if err != nil {
		t.Fatal(err)
	}
	return k.Public().(ed25519.PublicKey)
}

// copyLog copies the live log and checkpoints into a fresh schema for tampering, and returns
// a connection whose search path is that schema.
func copyLog(t *testing.T, name string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	admin := db(t)
	for _, q := range []string{
		`DROP SCHEMA IF EXISTS ` + name + ` CASCADE`, `CREATE SCHEMA ` + name,
		`CREATE TABLE ` + name + `.log AS SELECT * FROM audit.log`,
		`CREATE TABLE ` + name + `.checkpoints AS SELECT * FROM audit.checkpoints`,
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	cfg, _ := pgx.ParseConfig(stack.Endpoints().PostgresURL)
	cfg.RuntimeParams["search_path"] = name
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	return conn
}

// trim cuts a copy back to the frozen head.
func trim(t *testing.T, conn *pgx.Conn, head int64) {
	t.Helper()
	for _, q := range []string{`DELETE FROM log WHERE pos > $1`, `DELETE FROM checkpoints WHERE pos > $1`} {
		if _, err := conn.Exec(context.Background(), q, head); err != nil {
			t.Fatal(err)
		}
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	needStack(t)
	ctx := context.Background()
	for range 3 {
		activity(t)
	}
	pub := checkpointKey(t)
	// Wait for a checkpoint at the head.
	deadline := time.Now().Add(30 * time.Second)
	var head, cp int64
	for {
		if err := db(t).QueryRow(ctx, `SELECT (SELECT coalesce(max(pos),0) FROM audit.log), (SELECT coalesce(max(pos),0) FROM audit.checkpoints)`).Scan(&head, &cp); err != nil {
			t.Fatal(err)
		}
		if head >= 10 && cp == head {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint at the head (%d rows, checkpoint %d)", head, cp)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Freeze the head: copy now, so rows that arrive later are not in the copies.
	mid := head / 2
	cases := []struct {
		name, sql string
		firstBad  int64
		problem   string
	}{
		{"edited", fmt.Sprintf(`UPDATE log SET actor = 'user:someone-else' WHERE pos = %d`, mid), mid, "altered"},
		{"edited payload", fmt.Sprintf(`UPDATE log SET payload = replace(payload, '"version":1', '"version":2') WHERE pos = %d`, mid), mid, "altered"},
		{"deleted", fmt.Sprintf(`DELETE FROM log WHERE pos = %d`, mid), mid, "missing"},
		{"reordered", fmt.Sprintf(`UPDATE log SET pos = CASE pos WHEN %d THEN %d ELSE %d END WHERE pos IN (%d, %d)`, mid, mid+1, mid, mid, mid+1), mid, "does not follow"},
		{"truncated", fmt.Sprintf(`DELETE FROM log WHERE pos > %d`, head-2), head - 1, "truncated"},
		{"forged checkpoint", `UPDATE checkpoints SET hash = decode(repeat('00', 32), 'hex') WHERE pos = (SELECT max(pos) FROM checkpoints)`, 0, "invalid signature"},
	}
	clean := copyLog(t, "audit_intact")
	trim(t, clean, head)
	res, err := chain.Verify(ctx, clean, pub)
	if err != nil || !res.OK || res.Checkpoint != head {
		t.Fatalf("intact copy: %+v %v", res, err)
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn := copyLog(t, fmt.Sprintf("audit_tamper_%d", i))
			trim(t, conn, head)
			if _, err := conn.Exec(ctx, tc.sql); err != nil {
				t.Fatal(err)
			}
			res, err := chain.Verify(ctx, conn, pub)
			if err != nil {
				t.Fatal(err)
			}
			if res.OK || !strings.Contains(res.Problem, tc.problem) || (tc.firstBad != 0 && res.FirstBad != tc.firstBad) {
				t.Fatalf("verify = %+v, want a finding about %q at %d", res, tc.problem, tc.firstBad)
			}
		})
	}
	// The live log verifies through the API and through the command line.
	c := group.App("console")
	ac := auditclient.New(invoke.New(c.HTTPPort, c.DaprAPIToken))
	v, err := ac.Verify(ctx)
	if err != nil || !v.OK || v.Rows < head || v.Checkpoint < head {
		t.Fatalf("API verify: %+v %v", v, err)
	}
	page, err := ac.Entries(ctx, auditclient.Filter{Action: "auth.login.failed", Limit: 2})
	if err != nil || len(page.Entries) != 2 || page.NextCursor == "" {
		t.Fatalf("client query: %+v %v", page, err)
	}
	out, err := exec.Command(filepath.Join(stack.Home, "goplt"), "audit", "verify",
		"--database-url", stack.Endpoints().PostgresURL, "--secrets-file", stack.Endpoints().SecretsFile).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "audit log intact") {
		t.Fatalf("goplt audit verify: %v\n%s", err, out)
	}
	out, err = exec.Command(filepath.Join(stack.Home, "goplt"), "audit", "verify", "--schema", "audit_tamper_0",
		"--database-url", stack.Endpoints().PostgresURL, "--secrets-file", stack.Endpoints().SecretsFile).CombinedOutput()
	if err == nil || !strings.Contains(string(out), fmt.Sprintf("TAMPERED at position %d", mid)) {
		t.Fatalf("goplt audit verify on the edited copy: %v\n%s", err, out)
	}
}

// Batches (Dapr bulk subscribe): a poison event inside a batch is dead-lettered alone, the
// same event twice in one batch and a whole batch delivered again are each recorded once,
// and the chain verifies afterwards.
func TestBatchWithPoisonAndRedeliveries(t *testing.T) {
	needStack(t)
	prefix := fmt.Sprintf("batch%d", time.Now().UnixNano())
	const good = 60
	poison := prefix + "-poison"
	event := func(id string, data any) []byte {
		b, err := stack.SignedEvent("auth", "auth.login.failed", id, data)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var records []*kgo.Record
	for i := range good {
		ce := event(fmt.Sprintf("%s-%d", prefix, i), map[string]any{"version": 1, "email": "batch@example.com", "ip": "192.0.2.3", "reason": "invalid_credentials", "at": time.Now().UTC()})
		records = append(records, &kgo.Record{Topic: "auth.login.failed", Value: ce})
		if i == good/2 {
			records = append(records, &kgo.Record{Topic: "auth.login.failed", Value: event(poison, "not an object")})
		}
		if i%10 == 0 { // the same event again, right behind itself: inside one batch
			records = append(records, &kgo.Record{Topic: "auth.login.failed", Value: ce})
		}
	}
	cl, err := stack.KafkaClient(kgo.ProducerLinger(5 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produceAll := func() {
		if err := cl.ProduceSync(context.Background(), records...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produceAll()
	conn := db(t)
	waitRows(t, conn, prefix, good, 60*time.Second)
	produceAll() // every batch again
	time.Sleep(3 * time.Second)
	waitRows(t, conn, prefix, good, 60*time.Second)
	var rows, distinct int
	if err := conn.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT event_id) FROM audit.log WHERE event_id LIKE $1`, prefix+"-%").Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != good || distinct != good {
		t.Fatalf("%d rows, %d distinct, want %d each", rows, distinct, good)
	}
	waitDeadLetter(t, poison)
	status, body := get(t, "/audit/verify")
	var v chain.Result
	if status != http.StatusOK || json.Unmarshal(body, &v) != nil || !v.OK {
		t.Fatalf("verify after batches: %d %s", status, body)
	}
}
