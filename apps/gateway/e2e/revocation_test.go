package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// refusalWindow is what the tests allow a strict verifier (the gateway) to take to refuse a
// token after the change that ends it: the revocation cache's 5 s and a margin.
const refusalWindow = 6 * time.Second

// writes is a user hammering the platform with writes through the gateway, one after another,
// until the gateway refuses every kind, or stop.
type writes struct {
	mu       sync.Mutex
	accepted map[string]int // path -> writes accepted after mark
	refused  map[string]time.Time
	mark     time.Time
	done     chan struct{}
}

var writePaths = []string{"/blog/posts", "/notes"}

func startWrites(t *testing.T, bearer string) *writes {
	w := &writes{accepted: map[string]int{}, refused: map[string]time.Time{}, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 0; ; i++ {
			path := writePaths[i%len(writePaths)]
			body := map[string]string{"title": fmt.Sprintf("write %d", i), "body": "x"}
			if path == "/notes" {
				body = map[string]string{"text": fmt.Sprintf("note %d", i)}
			}
			r := do(t, "POST", path, bearer, body)
			w.mu.Lock()
			switch {
			case r.status == http.StatusCreated:
				if !w.mark.IsZero() {
					w.accepted[path]++
				}
			case r.status == http.StatusUnauthorized && !w.mark.IsZero():
				if _, ok := w.refused[path]; !ok {
					w.refused[path] = time.Now()
				}
			default:
				t.Errorf("%s: %d %s", path, r.status, r.body)
			}
			stop := len(w.refused) == len(writePaths) || time.Since(w.mark) > 30*time.Second && !w.mark.IsZero()
			w.mu.Unlock()
			if stop || t.Failed() {
				return
			}
		}
	}()
	return w
}

// markAt says the change happened at t: from then on, writes count as late.
func (w *writes) markAt(t time.Time) {
	w.mu.Lock()
	w.mark = t
	w.mu.Unlock()
}

// wait returns, for each write path, how long after the mark the gateway first refused it.
func (w *writes) wait(t *testing.T) map[string]time.Duration {
	t.Helper()
	<-w.done
	out := map[string]time.Duration{}
	for _, p := range writePaths {
		at, ok := w.refused[p]
		if !ok {
			t.Fatalf("%s: still accepted 30s after the change", p)
		}
		out[p] = at.Sub(w.mark)
	}
	return out
}

func refusedWithin(t *testing.T, w *writes, what string) {
	t.Helper()
	for path, d := range w.wait(t) {
		t.Logf("%s: %s refused %v after the change (%d writes accepted after it)", what, path, d.Round(time.Millisecond), w.accepted[path])
		if d > refusalWindow {
			t.Errorf("%s: %s refused only %v after the change, want within %v", what, path, d, refusalWindow)
		}
	}
}

// notesOfQuery counts a user's notes in the state store's table.
const notesOfQuery = `SELECT count(*) FROM state WHERE key LIKE 'notes||note-%' AND convert_from(value, 'UTF8')::jsonb->>'owner' = $1`

// count polls a query on the platform's database until it gives want, or fails after 30 s.
func count(t *testing.T, want int, what, query string, args ...any) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, stack.Endpoints().PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := conn.QueryRow(ctx, query, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d after 30s, want %d", what, n, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A deleted user's token stops at the gateway within the revocation window, and no write they
// made, before the deletion or racing it, survives the modules' clean-up.
func TestDeletedUserLosesAccessAtOnce(t *testing.T) {
	needStack(t)
	u := register(t)
	grant(t, u, "blog.editor", "notes.writer")
	w := startWrites(t, u.tok.AccessToken)
	time.Sleep(500 * time.Millisecond) // some writes before the deletion
	adm := admin(t)
	w.markAt(time.Now())
	expect(t, do(t, "DELETE", "/users/"+u.ID, adm.tok.AccessToken, nil), http.StatusNoContent, "delete user")
	refusedWithin(t, w, "deleted user")
	// The modules refuse a deleted subject at once (401 subject_deleted); the gateway itself
	// refuses the token within its revocation cache's window, before any module sees it.
	for {
		r := do(t, "GET", "/billing/subscription", u.tok.AccessToken, nil)
		if r.status == http.StatusUnauthorized && (r.code() == "token_revoked" || r.code() == "token_stale") {
			break
		}
		if took := time.Since(w.mark); took > refusalWindow {
			t.Fatalf("gateway still passes the deleted user's token %v after the deletion: %d %s", took, r.status, r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("deleted user: the gateway refuses the token %v after the deletion", time.Since(w.mark).Round(time.Millisecond))

	// Every write, the ones racing the deletion included, is cleaned up: blog anonymises the
	// posts, notes deletes them. A write landing after the clean-up would stay for good.
	count(t, 0, "blog posts still naming the deleted user", `SELECT count(*) FROM blog.posts WHERE author_id = $1`, u.ID)
	count(t, 0, "notes of the deleted user", notesOfQuery, u.ID)
	time.Sleep(3 * time.Second) // a late write would show by now
	count(t, 0, "blog posts naming the deleted user, 3 s on", `SELECT count(*) FROM blog.posts WHERE author_id = $1`, u.ID)
	count(t, 0, "notes of the deleted user, 3 s on", notesOfQuery, u.ID)

	r := do(t, "POST", "/token/refresh", "", map[string]string{"refreshToken": u.tok.RefreshToken})
	expect(t, r, http.StatusUnauthorized, "refresh after deletion")
	r = do(t, "POST", "/login", "", map[string]string{"email": u.Email, "password": u.Password})
	expect(t, r, http.StatusUnauthorized, "login after deletion")
}

// A disabled user's token stops within the window, they cannot log in or refresh; enabled
// again, they log in afresh (the old session stays ended).
func TestDisabledUserLosesAccessAtOnce(t *testing.T) {
	needStack(t)
	u := register(t)
	grant(t, u, "blog.editor", "notes.writer")
	w := startWrites(t, u.tok.AccessToken)
	time.Sleep(300 * time.Millisecond)
	adm := admin(t)
	w.markAt(time.Now())
	expect(t, do(t, "POST", "/users/"+u.ID+"/disable", adm.tok.AccessToken, nil), http.StatusOK, "disable")
	refusedWithin(t, w, "disabled user")

	r := do(t, "POST", "/login", "", map[string]string{"email": u.Email, "password": u.Password})
	if r.status != http.StatusForbidden || r.code() != "account_disabled" {
		t.Fatalf("login while disabled: %d %s, want 403 account_disabled", r.status, r.body)
	}
	r = do(t, "POST", "/token/refresh", "", map[string]string{"refreshToken": u.tok.RefreshToken})
	if r.status != http.StatusUnauthorized {
		t.Fatalf("refresh while disabled: %d %s, want 401", r.status, r.body)
	}

	expect(t, do(t, "POST", "/users/"+u.ID+"/enable", adm.tok.AccessToken, nil), http.StatusOK, "enable")
	old := u.tok
	u.login(t)
	expect(t, do(t, "POST", "/blog/posts", u.tok.AccessToken, map[string]string{"title": "back", "body": "x"}), http.StatusCreated, "write after re-enabling")
	r = do(t, "POST", "/blog/posts", old.AccessToken, map[string]string{"title": "old token", "body": "x"})
	expect(t, r, http.StatusUnauthorized, "the token from before the disabling")
	r = do(t, "POST", "/token/refresh", "", map[string]string{"refreshToken": old.RefreshToken})
	expect(t, r, http.StatusUnauthorized, "the refresh token from before the disabling")
}

// Taking a role away makes the tokens carrying it stale within the window; a refresh gives a
// token with the new roles.
func TestRemovedRoleStopsWithinTheWindow(t *testing.T) {
	needStack(t)
	u := register(t)
	grant(t, u, "blog.editor", "notes.writer")
	old := u.tok
	post := map[string]string{"title": "t", "body": "x"}
	expect(t, do(t, "POST", "/blog/posts", old.AccessToken, post), http.StatusCreated, "editor writes")
	adm := admin(t)
	changed := time.Now()
	expect(t, do(t, "PUT", "/users/"+u.ID+"/roles", adm.tok.AccessToken, map[string][]string{"roles": {"blog.reader"}}), http.StatusOK, "take blog.editor away")
	for {
		r := do(t, "POST", "/blog/posts", old.AccessToken, post)
		if r.status == http.StatusUnauthorized {
			if r.code() != "token_stale" {
				t.Fatalf("old token: %d %s, want token_stale", r.status, r.body)
			}
			break
		}
		expect(t, r, http.StatusCreated, "old token before the refusal")
		if time.Since(changed) > 30*time.Second {
			t.Fatal("the token with the removed role still works after 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(changed)
	t.Logf("token with the removed role refused %v after the change", took.Round(time.Millisecond))
	if took > refusalWindow {
		t.Errorf("token with the removed role refused only after %v, want within %v", took, refusalWindow)
	}
	u.refresh(t)
	r := do(t, "POST", "/blog/posts", u.tok.AccessToken, post)
	if r.status != http.StatusForbidden || r.code() != "forbidden" {
		t.Fatalf("refreshed token without blog.editor: %d %s, want 403 forbidden", r.status, r.body)
	}
	expect(t, do(t, "GET", "/blog/me/posts", u.tok.AccessToken, nil), http.StatusOK, "refreshed token reads")
}
