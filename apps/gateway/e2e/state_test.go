package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/goplt/goplt/internal/stacktest"
)

// writer is a user who may keep notes.
func writer(t *testing.T) *user {
	t.Helper()
	u := register(t)
	grant(t, u, "notes.writer")
	return u
}

type noteAnswer struct {
	ID, Text string
}

func (u *user) notes(t *testing.T) []noteAnswer {
	t.Helper()
	r := do(t, "GET", "/notes", u.tok.AccessToken, nil)
	expect(t, r, http.StatusOK, "list notes")
	var out struct{ Notes []noteAnswer }
	r.decode(t, &out)
	return out.Notes
}

// A POST with an Idempotency-Key is applied once: repeated after the answer, through the other
// gateway instance, after the gateway restarted, and many at once; the same key with another
// body is refused; keys are per user; the record's TTL is set in the store.
func TestIdempotencyKeysApplyOnce(t *testing.T) {
	needStack(t)
	if base2 == "" {
		t.Skip("needs the second gateway instance (not started when benchmarking)")
	}
	u := writer(t)
	post := func(at, key string, body any) response {
		return doAt(t, at, "POST", "/notes", u.tok.AccessToken, body, "Idempotency-Key", key)
	}
	body := map[string]string{"text": "applied once"}
	first := post(base, "k1", body)
	expect(t, first, http.StatusCreated, "first")
	var n noteAnswer
	first.decode(t, &n)
	check := func(r response, what string) {
		t.Helper()
		var again noteAnswer
		r.decode(t, &again)
		if r.status != http.StatusCreated || again.ID != n.ID || r.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("%s: %d %s %v; want the first answer replayed", what, r.status, r.body, r.header)
		}
	}
	check(post(base, "k1", body), "repeat")
	check(post(base2, "k1", body), "repeat through the other gateway")

	// Restart the first gateway: the record outlives it.
	gw := group.Instances("gateway")[0]
	old := gw.Process()
	_ = old.Signal(syscall.SIGKILL)
	<-old.Done()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if p := gw.Process(); p != nil && p != old {
			if resp, err := client.Get(base + "/healthz"); err == nil {
				resp.Body.Close()
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the gateway was not restarted within 60 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	check(post(base, "k1", body), "repeat after the gateway restarted")

	r := post(base2, "k1", map[string]string{"text": "something else"})
	if r.status != http.StatusUnprocessableEntity || r.code() != "idempotency_key_reused" {
		t.Errorf("same key, another body: %d %s", r.status, r.body)
	}
	// Another user's k1 is theirs.
	other := writer(t)
	r = doAt(t, base, "POST", "/notes", other.tok.AccessToken, body, "Idempotency-Key", "k1")
	if r.status != http.StatusCreated || r.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("another user's k1: %d %v", r.status, r.header)
	}

	// Twelve at once through both gateways: one note.
	var wg sync.WaitGroup
	statuses := make(chan int, 12)
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			at := base
			if i%2 == 1 {
				at = base2
			}
			statuses <- post(at, "k2", map[string]string{"text": "raced"}).status
		}()
	}
	wg.Wait()
	close(statuses)
	counts := map[int]int{}
	for s := range statuses {
		counts[s]++
	}
	if counts[http.StatusCreated] == 0 || counts[http.StatusCreated]+counts[http.StatusConflict] != 12 {
		t.Errorf("answers to 12 concurrent requests: %v, want 201s (one applied, the rest replayed) and 409s", counts)
	}
	raced := 0
	for _, x := range u.notes(t) {
		if x.Text == "raced" {
			raced++
		}
	}
	if raced != 1 {
		t.Errorf("%d notes from 12 concurrent requests with one key, want 1", raced)
	}
	if got := len(u.notes(t)); got != 2 {
		t.Errorf("the user has %d notes, want 2 (k1 and k2)", got)
	}

	// The record expires with the gateway's TTL (24 h here), as the store keeps it.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, stack.Endpoints().PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var left time.Duration
	if err := conn.QueryRow(ctx, `SELECT (max(expires_at) - now()) FROM state WHERE key LIKE 'gateway||idem-%'`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left < 23*time.Hour || left > 24*time.Hour {
		t.Errorf("an idempotency record expires in %s, want about 24h", left)
	}
}

// Notes keep their data in the state store: ETags as ETag/If-Match (a stale update is 412, one
// of two concurrent updates wins), expiry, keys under the app's prefix, the component scoped
// to notes and shared by its two replicas.
func TestNotesInTheStateStore(t *testing.T) {
	needStack(t)
	u := writer(t)
	r := do(t, "POST", "/notes", u.tok.AccessToken, map[string]string{"text": "v1"})
	expect(t, r, http.StatusCreated, "create")
	var n noteAnswer
	r.decode(t, &n)
	etag := r.header.Get("ETag")
	if etag == "" {
		t.Fatalf("no ETag: %v", r.header)
	}
	if got := do(t, "GET", "/notes/"+n.ID, u.tok.AccessToken, nil).header.Get("ETag"); got != etag {
		t.Fatalf("GET's ETag %s, create's %s", got, etag)
	}
	if r := do(t, "PUT", "/notes/"+n.ID, u.tok.AccessToken, map[string]string{"text": "v2"}); r.status != http.StatusPreconditionRequired {
		t.Errorf("update without If-Match: %d %s", r.status, r.body)
	}
	// Two updates from the same version: exactly one wins.
	var wg sync.WaitGroup
	results := make([]response, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = do(t, "PUT", "/notes/"+n.ID, u.tok.AccessToken, map[string]string{"text": fmt.Sprintf("writer %d", i)}, "If-Match", etag)
		}()
	}
	wg.Wait()
	won, lost := 0, 0
	var winner response
	for _, r := range results {
		switch {
		case r.status == http.StatusOK:
			won++
			winner = r
		case r.status == http.StatusPreconditionFailed && r.code() == "stale_etag":
			lost++
		default:
			t.Errorf("concurrent update: %d %s", r.status, r.body)
		}
	}
	if won != 1 || lost != 1 {
		t.Fatalf("two updates from one ETag: %d won, %d refused; want 1 and 1", won, lost)
	}
	var now noteAnswer
	r = do(t, "GET", "/notes/"+n.ID, u.tok.AccessToken, nil)
	r.decode(t, &now)
	var w noteAnswer
	winner.decode(t, &w)
	if now.Text != w.Text || r.header.Get("ETag") != winner.header.Get("ETag") {
		t.Errorf("stored %q (ETag %s), the winner wrote %q (ETag %s)", now.Text, r.header.Get("ETag"), w.Text, winner.header.Get("ETag"))
	}
	if r := do(t, "PUT", "/notes/"+n.ID, writer(t).tok.AccessToken, map[string]string{"text": "mine"}, "If-Match", winner.header.Get("ETag")); r.status != http.StatusForbidden {
		t.Errorf("another user's update: %d %s", r.status, r.body)
	}

	// Past the gateway (which replays answered keys), notes itself makes a retried key
	// harmless: the note's id comes from the user and the key, so a write that landed before
	// a 5xx is found again, not made twice.
	for range 2 {
		status, _, b := stacktest.Invoke(t, group.App("console"), "notes", http.MethodPost, "/notes", `{"text":"keyed"}`,
			http.Header{"Authorization": {"Bearer " + u.tok.AccessToken}, "Idempotency-Key": {"module-level"}})
		if status != http.StatusCreated {
			t.Fatalf("keyed create through a sidecar: %d %s", status, b)
		}
	}
	keyed := 0
	for _, x := range u.notes(t) {
		if x.Text == "keyed" {
			keyed++
		}
	}
	if keyed != 1 {
		t.Errorf("two creates with one key straight to notes made %d notes, want 1", keyed)
	}

	// Expiry.
	r = do(t, "POST", "/notes", u.tok.AccessToken, map[string]any{"text": "short-lived", "ttlSeconds": 2})
	expect(t, r, http.StatusCreated, "create with a TTL")
	var brief noteAnswer
	r.decode(t, &brief)
	time.Sleep(3 * time.Second)
	if r := do(t, "GET", "/notes/"+brief.ID, u.tok.AccessToken, nil); r.status != http.StatusNotFound {
		t.Errorf("an expired note: %d %s", r.status, r.body)
	}
	if got := u.notes(t); len(got) != 2 || got[0].ID != n.ID {
		t.Errorf("the list after expiry: %+v", got)
	}

	// Both notes instances read the same key through their own sidecars; the gateway's
	// sidecar has no such store (the component is scoped to notes).
	key := "note-" + n.ID
	var seen []string
	for _, inst := range group.Instances("notes") {
		status, b := stateGet(t, inst.DaprHTTP(), inst.DaprAPIToken, "notes", key)
		if status != http.StatusOK {
			t.Fatalf("notes instance %d reads %s: %d %s", inst.Instance, key, status, b)
		}
		seen = append(seen, string(b))
	}
	if len(seen) != 2 || seen[0] != seen[1] {
		t.Errorf("the replicas see %q", seen)
	}
	gw := group.App("gateway")
	if status, b := stateGet(t, gw.DaprHTTP(), gw.DaprAPIToken, "notes", key); status == http.StatusOK {
		t.Errorf("the gateway's sidecar reads notes' store: %s", b)
	}
	// Every key of the shared table carries its app's prefix.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, stack.Endpoints().PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var stray int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM state WHERE key NOT LIKE 'notes||%' AND key NOT LIKE 'gateway||%'`).Scan(&stray); err != nil {
		t.Fatal(err)
	}
	var notesKeys int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM state WHERE key = $1`, "notes||"+key).Scan(&notesKeys); err != nil || notesKeys != 1 || stray != 0 {
		t.Errorf("keys: %d for the note under notes||, %d without an app prefix (%v)", notesKeys, stray, err)
	}
}

// stateGet reads a key through a sidecar's state API.
func stateGet(t *testing.T, sidecar, token, store, key string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, sidecar+"/v1.0/state/"+store+"/"+key, nil)
	req.Header.Set("dapr-api-token", token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, []byte(strings.TrimSpace(string(b)))
}
