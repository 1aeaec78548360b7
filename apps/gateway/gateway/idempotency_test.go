package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeState is an in-memory Dapr state store behind the fake sidecar, with Dapr's first-write
// and ETag rules (the end-to-end tests run the real one).
type fakeState struct {
	mu   sync.Mutex
	rows map[string]fakeRow
	seq  int
}

type fakeRow struct {
	value json.RawMessage
	etag  string
}

func (f *fakeState) serve(w http.ResponseWriter, r *http.Request) bool {
	const prefix = "/v1.0/state/idempotency"
	if !strings.HasPrefix(r.URL.Path, prefix) {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rows == nil {
		f.rows = map[string]fakeRow{}
	}
	key := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, prefix), "/")
	switch r.Method {
	case http.MethodGet:
		row, ok := f.rows[key]
		if !ok {
			w.WriteHeader(http.StatusNoContent)
			return true
		}
		w.Header().Set("ETag", row.etag)
		_, _ = w.Write(row.value)
	case http.MethodDelete:
		delete(f.rows, key)
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPost:
		var items []struct {
			Key     string
			Value   json.RawMessage
			ETag    string `json:"etag"`
			Options struct{ Concurrency string }
		}
		_ = json.NewDecoder(r.Body).Decode(&items)
		for _, it := range items {
			row, exists := f.rows[it.Key]
			switch {
			case it.ETag != "" && (!exists || row.etag != it.ETag):
				w.WriteHeader(http.StatusConflict)
				return true
			case it.ETag == "" && it.Options.Concurrency == "first-write" && exists:
				w.WriteHeader(http.StatusInternalServerError) // as Dapr answers "no item was updated"
				return true
			}
			f.seq++
			f.rows[it.Key] = fakeRow{it.Value, strconv.Itoa(f.seq)}
		}
		w.WriteHeader(http.StatusNoContent)
	}
	return true
}

func TestIdempotencyKeyAppliesOnce(t *testing.T) {
	var state fakeState
	var calls atomic.Int32
	release := make(chan struct{})
	g, _, _ := setup(t, func(w http.ResponseWriter, r *http.Request) {
		if state.serve(w, r) {
			return
		}
		n := calls.Add(1)
		b, _ := io.ReadAll(r.Body)
		switch string(b) {
		case `{"slow":true}`:
			<-release
		case `{"fail":true}`:
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Location", "/blog/posts/"+strconv.Itoa(int(n)))
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"n":`+strconv.Itoa(int(n))+`}`)
	})
	g.idem = &idempotencyStore{sidecar: g.cfg.Sidecar, store: "idempotency", client: http.DefaultClient, ttl: time.Hour, abandonAfter: time.Hour}
	post := func(bearer, key, body string) *http.Response {
		rec := call(g, "POST", "/blog/posts", bearer, body, "Idempotency-Key", key)
		return rec.Result()
	}
	read := func(r *http.Response) string { b, _ := io.ReadAll(r.Body); return string(b) }

	first := post("editor", "k1", `{"a":1}`)
	again := post("editor", "k1", `{"a":1}`)
	if first.StatusCode != 201 || again.StatusCode != 201 || read(again) != `{"n":1}` || again.Header.Get(ReplayedHeader) != "true" ||
		again.Header.Get("Location") != "/blog/posts/1" || calls.Load() != 1 {
		t.Fatalf("repeat: %d %s %v, module calls %d; want the first answer replayed, the module called once", again.StatusCode, read(again), again.Header, calls.Load())
	}
	if r := post("editor", "k1", `{"a":2}`); r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(read(r), "idempotency_key_reused") {
		t.Errorf("same key, other body: %d", r.StatusCode)
	}
	if r := post("editor2", "k1", `{"a":1}`); calls.Load() != 2 || r.StatusCode != 201 || r.Header.Get(ReplayedHeader) != "" {
		t.Errorf("another user's k1: %d %v, module calls %d: keys are per user", r.StatusCode, r.Header, calls.Load())
	}

	// A repeat while the first runs: 409, and the first still applies once.
	done := make(chan *http.Response)
	go func() { done <- post("editor", "k2", `{"slow":true}`) }()
	for calls.Load() < 3 {
		time.Sleep(5 * time.Millisecond)
	}
	if r := post("editor", "k2", `{"slow":true}`); r.StatusCode != http.StatusConflict || r.Header.Get("Retry-After") == "" {
		t.Errorf("repeat in flight: %d %s", r.StatusCode, read(r))
	}
	close(release)
	if r := <-done; r.StatusCode != 201 {
		t.Fatalf("slow first: %d", r.StatusCode)
	}
	if r := post("editor", "k2", `{"slow":true}`); r.Header.Get(ReplayedHeader) != "true" || calls.Load() != 3 {
		t.Errorf("after the slow one: %v, calls %d", r.Header, calls.Load())
	}

	// A 5xx frees the key: the retry reaches the module.
	post("editor", "k3", `{"fail":true}`)
	post("editor", "k3", `{"fail":true}`)
	if calls.Load() != 5 {
		t.Errorf("module calls after a failed request and its retry: %d, want 5", calls.Load())
	}
	if r := post("editor", "bad key", `{}`); r.StatusCode != http.StatusBadRequest {
		t.Errorf("a key with a space: %d", r.StatusCode)
	}
	// Abandoned claims (their gateway died) are taken over by one request.
	state.mu.Lock()
	b, _ := json.Marshal(idemRecord{State: "pending", Fingerprint: fingerprint("POST", "/blog/posts", "/blog/posts", "u-editor", []byte(`{"a":9}`)), Started: time.Now().Add(-2 * time.Hour)})
	state.rows[idempotencyKey("u-editor", "k4")] = fakeRow{b, "old"}
	state.mu.Unlock()
	if r := post("editor", "k4", `{"a":9}`); r.StatusCode != 201 || r.Header.Get(ReplayedHeader) != "" {
		t.Errorf("abandoned claim: %d %v", r.StatusCode, r.Header)
	}
}
