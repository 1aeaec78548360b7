package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// writers is the state-store load: notes created through the gateway with an Idempotency-Key
// each, by several users (each user's index is one key, written under its ETag). A client
// retries a failed write with the same key and body until the platform answers 201 or the
// settle deadline passes, as a real client would; the key makes the retries safe.
type writers struct {
	tokens []string
}

func newWriters(t *testing.T, n int) *writers {
	w := &writers{}
	for i := range n {
		email := fmt.Sprintf("chaos-writer-%d-%d@example.com", time.Now().UnixNano(), i)
		id, ok := createUser(email)
		if !ok {
			t.Fatal("cannot register a writer")
		}
		grantWriter(t, id)
		w.tokens = append(w.tokens, login(t, email, readerPassword))
	}
	return w
}

// writeBooks is what the write load saw.
type writeBooks struct {
	keys, acked, unacked int
}

// load writes at rate per second until ctx ends; each write then keeps retrying until settle.
// It returns every key with the text its note must carry (prefix-<n>), and the books.
func (w *writers) load(ctx context.Context, rate int, prefix string, settle time.Time) (map[string]string, writeBooks) {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		acked  = map[string]string{} // key -> note id
		keys   atomic.Int64
		failed atomic.Int64
	)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for i := 0; ctx.Err() == nil; i++ {
		select {
		case <-ctx.Done():
			continue
		case <-tick.C:
		}
		keys.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("%s-%d", prefix, i)
			tok := w.tokens[i%len(w.tokens)]
			for attempt := 0; time.Now().Before(settle); attempt++ {
				status, b, err := callWith("POST", "/notes", tok, map[string]string{"text": key}, "Idempotency-Key", key)
				var n struct{ ID string }
				if err == nil && status == http.StatusCreated && json.Unmarshal(b, &n) == nil {
					mu.Lock()
					acked[key] = n.ID
					mu.Unlock()
					return
				}
				time.Sleep(time.Duration(min(200<<min(attempt, 4), 2000)) * time.Millisecond)
			}
			failed.Add(1)
		}()
	}
	wg.Wait()
	return acked, writeBooks{keys: int(keys.Load()), acked: len(acked), unacked: int(failed.Load())}
}

// noteBooks counts, for every acknowledged key, the notes carrying its text: lost is an
// acknowledged key whose note is not there (or not the id the client was given), duplicates
// notes beyond one per key.
func noteBooks(db *pgxpool.Pool, prefix string, acked map[string]string) (lost, dups int) {
	rows, err := db.Query(context.Background(), `SELECT convert_from(value, 'UTF8')::jsonb->>'text', convert_from(value, 'UTF8')::jsonb->>'id'
		FROM state WHERE key LIKE 'notes||note-%' AND convert_from(value, 'UTF8')::jsonb->>'text' LIKE $1`, prefix+"-%")
	if err != nil {
		return len(acked), 0
	}
	defer rows.Close()
	ids := map[string][]string{}
	for rows.Next() {
		var text, id string
		if rows.Scan(&text, &id) == nil {
			ids[text] = append(ids[text], id)
		}
	}
	for key, id := range acked {
		got := ids[key]
		if len(got) == 0 || !strings.Contains(strings.Join(got, ","), id) {
			lost++
		}
	}
	for _, got := range ids {
		dups += len(got) - 1
	}
	return lost, dups
}

// callWith is call with extra headers.
func callWith(method, path, bearer string, body any, hdr ...string) (int, []byte, error) {
	return callHeaders(method, path, bearer, body, hdr)
}
