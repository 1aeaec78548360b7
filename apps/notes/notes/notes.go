// Package notes is the sample module. It stores notes in its own PostgreSQL schema, publishes
// notes.note.created through its sidecar (Kafka), and receives that event back through a
// declarative subscription, recording the delivery. It is invoked by other sidecars through
// Dapr service invocation resolved by Consul. A note made for a user (a bearer token) belongs
// to them, and is deleted when they are.
package notes

import (
	"context"
	"embed"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	auth "github.com/goplt/goplt/apps/auth/client"
	identity "github.com/goplt/goplt/apps/identity/client"
	"github.com/goplt/goplt/apps/notes/contract"
	"github.com/goplt/goplt/apps/notes/permissions"
	"github.com/goplt/goplt/internal/kernel"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Topic is the event published for every new note.
const Topic = "notes.note.created"

// Module is the notes module.
type Module struct{ k *kernel.Kernel }

// New returns the module.
func New() *Module { return &Module{} }

// Name implements kernel.Module.
func (m *Module) Name() string { return "notes" }

// Init implements kernel.Module.
func (m *Module) Init(k *kernel.Kernel) error {
	k.UseContracts(contract.Events())
	m.k = k
	k.Migrations(migrations, "migrations")
	k.UseVerifier(auth.New(k.Invoker()).NewVerifier(auth.VerifierOptions{}).Cached(10000))
	k.DefinePermissions(permissions.Declared()...)
	k.UseRoutes(contract.Routes()) // who may call each route: the manifest says
	k.HandleFunc("POST /notes", m.create)
	k.HandleFunc("GET /notes/{id}", m.get)
	k.Subscribe(Topic, "/events/note-created", m.noteCreated)
	k.SubscribeDeletions(identity.UserDeletion, "/events/user-deleted", m.userDeleted)
	return nil
}

// Note is the API representation of a note.
type Note struct {
	ID        string    `json:"id"`
	Text      string    `json:"text"`
	CreatedAt time.Time `json:"createdAt"`
	// Delivered says whether the note's created event has come back through the broker.
	Delivered bool `json:"delivered"`
}

// CreatedEvent is the payload of notes.note.created.
type CreatedEvent struct {
	NoteID string `json:"noteId"`
	Text   string `json:"text"`
}

func (m *Module) create(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Text string `json:"text"`
	}
	if !kernel.DecodeJSON(w, r, 64<<10, &in) {
		return
	}
	if n := len(strings.TrimSpace(in.Text)); n == 0 || len(in.Text) > 10000 {
		kernel.WriteError(w, r, http.StatusBadRequest, "invalid_text", "text must be 1 to 10000 bytes and not blank")
		return
	}
	// The owner: the request's user, or nobody for a service calling without a token.
	var owner *string
	switch c, err := m.k.Principal(r); {
	case err == nil:
		owner = &c.Subject
	case !errors.Is(err, kernel.ErrNoToken):
		kernel.WriteError(w, r, http.StatusUnauthorized, "unauthenticated", "the bearer token is not valid")
		return
	}
	ctx := r.Context()
	// The note and its event stand or fall together: publish inside the transaction and
	// commit only once the broker has the event. (The core services use an outbox instead.)
	tx, err := m.k.DB().Begin(ctx)
	if err != nil {
		m.fail(w, r, "begin", err)
		return
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	var n Note
	if err := tx.QueryRow(ctx, `INSERT INTO notes (text, owner_id) VALUES ($1, $2) RETURNING id, text, created_at`, in.Text, owner).
		Scan(&n.ID, &n.Text, &n.CreatedAt); err != nil {
		m.fail(w, r, "insert", err)
		return
	}
	if err := m.k.Publish(ctx, Topic, "note-"+n.ID, CreatedEvent{NoteID: n.ID, Text: n.Text}); err != nil {
		m.k.Log().ErrorContext(ctx, "publish failed; note not stored", "err", err)
		kernel.WriteError(w, r, http.StatusServiceUnavailable, "event_bus_unavailable", "the note could not be announced; try again")
		return
	}
	if err := tx.Commit(ctx); err != nil {
		m.fail(w, r, "commit", err)
		return
	}
	kernel.WriteJSON(w, http.StatusCreated, n)
}

func (m *Module) get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var n Note
	err := m.k.DB().QueryRow(r.Context(), `
		SELECT n.id, n.text, n.created_at, EXISTS (SELECT 1 FROM received_events e WHERE e.note_id = n.id)
		FROM notes n WHERE n.id::text = $1`, id).Scan(&n.ID, &n.Text, &n.CreatedAt, &n.Delivered)
	if errors.Is(err, pgx.ErrNoRows) {
		kernel.WriteError(w, r, http.StatusNotFound, "note_not_found", "no note with id "+id)
		return
	}
	if err != nil {
		m.fail(w, r, "select", err)
		return
	}
	kernel.WriteJSON(w, http.StatusOK, n)
}

func (m *Module) noteCreated(ctx context.Context, e kernel.Event) error {
	var ev CreatedEvent
	if err := e.Decode(&ev); err != nil || ev.NoteID == "" {
		return errors.Join(kernel.ErrDrop, err)
	}
	_, err := m.k.DB().Exec(ctx, `INSERT INTO received_events (event_id, note_id) VALUES ($1, $2)
		ON CONFLICT (event_id) DO NOTHING`, e.ID, ev.NoteID)
	return err // an error means the database is unwell: Dapr redelivers
}

// userDeleted deletes a deleted user's notes (and the record of their events). The kernel has
// already recorded the deletion, so no note of theirs is written after this.
func (m *Module) userDeleted(ctx context.Context, userID string) error {
	_, err := m.k.DB().Exec(ctx, `WITH gone AS (DELETE FROM notes WHERE owner_id = $1 RETURNING id)
		DELETE FROM received_events WHERE note_id IN (SELECT id FROM gone)`, userID)
	return err
}

func (m *Module) fail(w http.ResponseWriter, r *http.Request, step string, err error) {
	if errors.Is(err, kernel.ErrSubjectDeleted) {
		m.k.Fail(w, r, step, err)
		return
	}
	m.k.Log().ErrorContext(r.Context(), "database error", "step", step, "err", err)
	kernel.WriteError(w, r, http.StatusInternalServerError, "internal", "internal error")
}
