package kernel

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// SubjectDeletion says how a module learns that a subject (a user) was deleted: the topic that
// announces it and how to read the subject's id from an event on it. The identity client
// provides the platform's (identity.UserDeletion).
type SubjectDeletion struct {
	Topic string
	// Subject reads the deleted subject's id; an error wrapping ErrDrop drops the event.
	Subject func(Event) (string, error)
}

// DeletionHandler removes or anonymises what the module holds about a deleted subject. Like
// every event handler it must be idempotent: a delivery can repeat.
type DeletionHandler func(ctx context.Context, subject string) error

// ErrSubjectDeleted is returned by Principal, and by a database call made for such a request,
// when the request's subject was deleted. Fail answers it with 401 subject_deleted.
var ErrSubjectDeleted = errors.New("the user was deleted")

//go:embed migrations/subjects/*.sql
var subjectMigrations embed.FS

// SubscribeDeletions declares the module's clean-up of a deleted subject's data, delivered from
// d.Topic to path, and turns on the kernel's deletion guard. The guarantee, for a module with
// a database:
//
//   - Before h runs, the kernel records the subject as deleted in the module's schema, under
//     an exclusive advisory lock on the subject.
//   - Every database connection a request that may write (any method but GET, HEAD and
//     OPTIONS) takes after its Principal was verified holds that lock shared while in use,
//     and is refused (ErrSubjectDeleted) once the record exists. So a write made for the
//     subject either committed before the record (and h, which runs after, cleans it up) or
//     is refused: none lands after the clean-up, whichever replica serves it and whatever a
//     gateway's cache says.
//   - Principal refuses the subject's tokens (ErrSubjectDeleted) as soon as this replica has
//     seen the record: at once on the replica that handled the event, within
//     deletedRefresh on the others.
//
// Writes a module makes without a verified Principal on the request's context (a background
// job, say), or while serving a GET, HEAD or OPTIONS request, are not guarded. The guard
// costs a request that may write one round trip when it takes a connection, and one off its
// path when it returns it (docs/benchmarks.md, "deletion guard").
func (k *Kernel) SubscribeDeletions(d SubjectDeletion, path string, h DeletionHandler) {
	if d.Subject == nil || h == nil {
		k.initErrs = append(k.initErrs, fmt.Sprintf("SubscribeDeletions(%q): needs a subject reader and a handler", d.Topic))
		return
	}
	if k.deleted == nil {
		k.deleted = newDeletedSubjects(k.log)
	}
	k.Subscribe(d.Topic, path, func(ctx context.Context, e Event) error {
		subject, err := d.Subject(e)
		if err != nil {
			return err
		}
		if subject == "" {
			return fmt.Errorf("%w: event %s names no subject", ErrDrop, e.ID)
		}
		if err := k.deleted.record(ctx, k.db, subject); err != nil {
			return fmt.Errorf("record the deletion of %s: %w", subject, err)
		}
		return h(ctx, subject)
	})
}

// SubjectDeleted says whether this replica knows the subject was deleted (within the last
// deletedMemory): for handlers of other events about the subject that may arrive after its
// deletion, since topics keep no order between them. Always false without SubscribeDeletions.
func (k *Kernel) SubjectDeleted(subject string) bool {
	return k.deleted != nil && k.deleted.has(subject)
}

// deletedRefresh is how often a replica reads deletions recorded by the others.
const deletedRefresh = 2 * time.Second

// deletedMemory bounds how long a deletion stays in memory for Principal's refusal; far longer
// than any access token lives. The database record, which guards writes, stays for good.
const deletedMemory = 24 * time.Hour

// deletedSubjects is the kernel's deletion guard: the subjects this module saw deleted, and
// the shared locks its connections hold for requests' subjects.
type deletedSubjects struct {
	log *slog.Logger

	mu    sync.RWMutex
	set   map[string]time.Time // subject -> deleted at
	since time.Time            // newest deleted_at read from the database

	locked sync.Map // *pgx.Conn -> int32 lock key held shared
}

func newDeletedSubjects(log *slog.Logger) *deletedSubjects {
	return &deletedSubjects{log: log, set: map[string]time.Time{}}
}

// subjectLockClass is the first key of the two-key advisory locks on subjects (two-key locks
// never collide with the one-key locks of schema creation and migrations).
const subjectLockClass int32 = 0x67706c74 // "gplt"

// subjectKey is the second key: a hash, so two subjects may share a lock (they then only
// wait for each other's deletions).
func subjectKey(subject string) int32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(subject))
	return int32(h.Sum32())
}

func (d *deletedSubjects) has(subject string) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	_, ok := d.set[subject]
	return ok
}

func (d *deletedSubjects) add(subject string, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.set[subject] = at
	if at.After(d.since) {
		d.since = at
	}
}

// record stores the deletion under the subject's exclusive lock, so it waits for every
// connection in use for the subject's requests, and refuses the ones after it.
func (d *deletedSubjects) record(ctx context.Context, db *pgxpool.Pool, subject string) error {
	if db == nil {
		d.add(subject, time.Now())
		return nil
	}
	var at time.Time
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, subjectLockClass, subjectKey(subject)); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `INSERT INTO goplt_deleted_subjects (subject) VALUES ($1)
			ON CONFLICT (subject) DO UPDATE SET subject = excluded.subject RETURNING deleted_at`, subject).Scan(&at)
	})
	if err != nil {
		return err
	}
	d.add(subject, at)
	return nil
}

// load reads deletions recorded since the last load (by any replica) and forgets, in memory,
// the ones older than deletedMemory.
func (d *deletedSubjects) load(ctx context.Context, db *pgxpool.Pool) error {
	d.mu.RLock()
	since := d.since
	d.mu.RUnlock()
	if since.IsZero() {
		since = time.Now().Add(-deletedMemory)
	}
	rows, err := db.Query(ctx, `SELECT subject, deleted_at FROM goplt_deleted_subjects WHERE deleted_at >= $1`, since)
	if err != nil {
		return err
	}
	var subject string
	var at time.Time
	_, err = pgx.ForEachRow(rows, []any{&subject, &at}, func() error {
		d.add(subject, at)
		return nil
	})
	if err != nil {
		return err
	}
	cutoff := time.Now().Add(-deletedMemory)
	d.mu.Lock()
	for s, at := range d.set {
		if at.Before(cutoff) {
			delete(d.set, s)
		}
	}
	d.mu.Unlock()
	return nil
}

// follow loads other replicas' deletions every deletedRefresh until ctx ends.
func (d *deletedSubjects) follow(ctx context.Context, db *pgxpool.Pool) {
	t := time.NewTicker(deletedRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := d.load(ctx, db); err != nil && ctx.Err() == nil {
				d.log.Warn("reading deleted subjects failed", "err", err)
			}
		}
	}
}

// configurePool makes every connection taken for a request with a verified subject hold the
// subject's lock shared while in use, and refuses connections for deleted subjects.
func (d *deletedSubjects) configurePool(c *pgxpool.Config) {
	c.PrepareConn = d.prepare
	c.AfterRelease = d.release
	c.BeforeClose = func(conn *pgx.Conn) { d.locked.Delete(conn) }
}

func (d *deletedSubjects) prepare(ctx context.Context, conn *pgx.Conn) (bool, error) {
	subject := subjectFrom(ctx)
	if subject == "" {
		return true, nil
	}
	key := subjectKey(subject)
	// One round trip. Each statement reads a fresh snapshot (read committed), so the check
	// runs after the lock is granted and sees a deletion committed while it waited.
	b := &pgx.Batch{}
	b.Queue(`SELECT pg_advisory_lock_shared($1, $2)`, subjectLockClass, key)
	b.Queue(`SELECT EXISTS (SELECT 1 FROM goplt_deleted_subjects WHERE subject = $1)`, subject)
	br := conn.SendBatch(ctx, b)
	var deleted bool
	_, err := br.Exec()
	if err == nil {
		err = br.QueryRow().Scan(&deleted)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// Destroy the connection: whatever it holds is released with its session.
		return false, fmt.Errorf("deletion guard for %s: %w", subject, err)
	}
	if deleted {
		d.add(subject, time.Now())
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock_shared($1, $2)`, subjectLockClass, key); err != nil {
			return false, ErrSubjectDeleted
		}
		return true, ErrSubjectDeleted
	}
	d.locked.Store(conn, key)
	return true, nil
}

// release drops the shared lock before the connection goes back to the pool (pgxpool runs it
// off the request's goroutine).
func (d *deletedSubjects) release(conn *pgx.Conn) bool {
	v, ok := d.locked.LoadAndDelete(conn)
	if !ok {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := conn.Exec(ctx, `SELECT pg_advisory_unlock_shared($1, $2)`, subjectLockClass, v.(int32))
	return err == nil // on failure the connection is closed, which releases the lock
}

// safeMethod says whether a request may not change state (RFC 9110, 9.2.1): the deletion
// guard leaves those alone, which spares reads its round trip.
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// requestSubject is put on the context of every request that may write; Principal fills it once the token is
// verified, and the deletion guard reads it when the request takes a database connection.
type requestSubject struct{ v atomic.Pointer[string] }

type requestSubjectKey struct{}

func withRequestSubject(ctx context.Context) context.Context {
	return context.WithValue(ctx, requestSubjectKey{}, &requestSubject{})
}

func setSubject(ctx context.Context, subject string) {
	if rs, ok := ctx.Value(requestSubjectKey{}).(*requestSubject); ok {
		rs.v.Store(&subject)
	}
}

func subjectFrom(ctx context.Context) string {
	if rs, ok := ctx.Value(requestSubjectKey{}).(*requestSubject); ok {
		if p := rs.v.Load(); p != nil {
			return *p
		}
	}
	return ""
}
