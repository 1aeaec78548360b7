package kernel

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/goplt/goplt/internal/token"
)

// subjectVerifier accepts any bearer token as the subject it names.
type subjectVerifier struct{}

func (subjectVerifier) Verify(_ context.Context, raw string) (*token.Claims, error) {
	c := &token.Claims{}
	c.Subject = raw
	return c, nil
}

var testDeletion = SubjectDeletion{
	Topic: "demo.user.deleted",
	Subject: func(e Event) (string, error) {
		var v struct{ UserID string }
		if err := e.Decode(&v); err != nil {
			return "", errors.Join(ErrDrop, err)
		}
		return v.UserID, nil
	},
}

// A deletion event makes Principal refuse the subject before the module's clean-up runs, and
// the module's handler gets the subject.
func TestDeletionRefusesThePrincipal(t *testing.T) {
	var cleaned []string
	k := newTestKernel(t, func(k *Kernel) {
		k.UseVerifier(subjectVerifier{})
		k.SubscribeDeletions(testDeletion, "/events/user-deleted", func(ctx context.Context, subject string) error {
			cleaned = append(cleaned, subject)
			return nil
		})
		route(k, "GET /me", Access{Public: true}, func(w http.ResponseWriter, r *http.Request) {
			c, err := k.Principal(r)
			if err != nil {
				k.Fail(w, r, "principal", err)
				return
			}
			WriteJSON(w, http.StatusOK, map[string]string{"sub": c.Subject})
		})
	})
	h := k.handler()
	hdr := func(sub string) map[string]string {
		return map[string]string{"dapr-api-token": "secret", "Authorization": "Bearer " + sub}
	}
	if rec := do(h, "GET", "/me", "", hdr("ann")); rec.Code != http.StatusOK {
		t.Fatalf("before the deletion: %d %s", rec.Code, rec.Body)
	}
	ev := signed(t, k, "demo.user.deleted", "ev-1", `{"userId":"ann"}`)
	if rec := do(h, "POST", "/events/user-deleted", ev, map[string]string{"dapr-api-token": "secret"}); !strings.Contains(rec.Body.String(), "SUCCESS") {
		t.Fatalf("deletion event: %d %s", rec.Code, rec.Body)
	}
	if len(cleaned) != 1 || cleaned[0] != "ann" {
		t.Fatalf("clean-up got %v", cleaned)
	}
	rec := do(h, "GET", "/me", "", hdr("ann"))
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), `"subject_deleted"`) {
		t.Fatalf("after the deletion: %d %s, want 401 subject_deleted", rec.Code, rec.Body)
	}
	if rec := do(h, "GET", "/me", "", hdr("bob")); rec.Code != http.StatusOK {
		t.Fatalf("another user: %d %s", rec.Code, rec.Body)
	}
	if !k.SubjectDeleted("ann") || k.SubjectDeleted("bob") {
		t.Fatal("SubjectDeleted disagrees with the events")
	}
	bad := signed(t, k, "demo.user.deleted", "ev-2", `{"userId":""}`)
	if rec := do(h, "POST", "/events/user-deleted", bad, map[string]string{"dapr-api-token": "secret"}); !strings.Contains(rec.Body.String(), "DROP") {
		t.Fatalf("an event naming nobody: %d %s, want DROP", rec.Code, rec.Body)
	}
}

func guardedPool(t testing.TB, d *deletedSubjects, schema string) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	pool, err := openPool(ctx, stack.Endpoints().PostgresURL, schema, d.configurePool)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	sub, _ := fs.Sub(subjectMigrations, "migrations/subjects")
	if err := migrate(ctx, pool, schema, "subjects", sub, newLogger(io.Discard, Config{})); err != nil {
		t.Fatal(err)
	}
	return pool
}

// The guard against the real database: a deletion waits for a write in flight for the subject
// (so the clean-up after it sees that write), and every later write for the subject is
// refused, on the replica that recorded the deletion and on another one.
func TestDeletionGuardOrdersWritesAroundTheDeletion(t *testing.T) {
	if stack == nil {
		t.Skip("integration test: needs PostgreSQL")
	}
	ctx := context.Background()
	log := newLogger(io.Discard, Config{})
	d := newDeletedSubjects(log)
	pool := guardedPool(t, d, "guard")
	if _, err := pool.Exec(ctx, `CREATE TABLE posts (author text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	forAnn := withRequestSubject(ctx)
	setSubject(forAnn, "ann")
	forBob := withRequestSubject(ctx)
	setSubject(forBob, "bob")

	tx, err := pool.Begin(forAnn) // a write in flight when the deletion arrives
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(forAnn, `INSERT INTO posts VALUES ('ann')`); err != nil {
		t.Fatal(err)
	}
	recorded := make(chan error, 1)
	go func() { recorded <- d.record(ctx, pool, "ann") }()
	select {
	case err := <-recorded:
		t.Fatalf("the deletion did not wait for the write in flight (err %v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := tx.Commit(forAnn); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-recorded:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the deletion was not recorded after the write committed")
	}
	// The clean-up, after the record, sees the write that was in flight.
	tag, err := pool.Exec(ctx, `DELETE FROM posts WHERE author = 'ann'`)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("clean-up removed %d rows (err %v), want the write in flight", tag.RowsAffected(), err)
	}
	// Later writes for ann are refused, here and on a replica that has not read the record.
	if _, err := pool.Exec(forAnn, `INSERT INTO posts VALUES ('ann')`); !errors.Is(err, ErrSubjectDeleted) {
		t.Fatalf("a write after the deletion: %v, want ErrSubjectDeleted", err)
	}
	other := newDeletedSubjects(log)
	replica := guardedPool(t, other, "guard")
	if err := pgx.BeginFunc(forAnn, replica, func(tx pgx.Tx) error {
		_, err := tx.Exec(forAnn, `INSERT INTO posts VALUES ('ann')`)
		return err
	}); !errors.Is(err, ErrSubjectDeleted) {
		t.Fatalf("a write on another replica: %v, want ErrSubjectDeleted", err)
	}
	if !other.has("ann") {
		t.Error("the other replica did not remember the refused subject")
	}
	// Other users, and calls made without a user, are not affected.
	if _, err := pool.Exec(forBob, `INSERT INTO posts VALUES ('bob')`); err != nil {
		t.Fatalf("another user's write: %v", err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO posts VALUES ('system')`); err != nil {
		t.Fatalf("a write without a user: %v", err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM posts WHERE author = 'ann'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows of ann survive (err %v)", n, err)
	}
	// A replica starting later learns the deletion from the database.
	late := newDeletedSubjects(log)
	if err := late.load(ctx, pool); err != nil || !late.has("ann") || late.has("bob") {
		t.Fatalf("load: has(ann)=%v has(bob)=%v err %v", late.has("ann"), late.has("bob"), err)
	}
	// Every shared lock is released once the connections are back in the pool.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var held int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::bigint::oid AND mode = 'ShareLock'`,
			int64(uint32(subjectLockClass))).Scan(&held); err != nil {
			t.Fatal(err)
		}
		if held == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d shared subject locks still held", held)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// BenchmarkDeletionGuard is what the guard adds to a signed-in user's write in a module that
// cleans up after deletions: a transaction inserting a row, with the guard (shared lock and
// deletion check when the connection is taken, unlock after it is returned) and without.
func BenchmarkDeletionGuard(b *testing.B) {
	if stack == nil {
		b.Skip("needs PostgreSQL")
	}
	bg := context.Background()
	ctx := withRequestSubject(bg)
	setSubject(ctx, "ann")
	guarded := guardedPool(b, newDeletedSubjects(newLogger(io.Discard, Config{})), "guardbench")
	plain, err := openPool(bg, stack.Endpoints().PostgresURL, "guardbench", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.Exec(bg, `CREATE TABLE IF NOT EXISTS writes (author text NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		pool *pgxpool.Pool
	}{{"unguarded", plain}, {"guarded", guarded}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
					_, err := tx.Exec(ctx, `INSERT INTO writes VALUES ('ann')`)
					return err
				}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
