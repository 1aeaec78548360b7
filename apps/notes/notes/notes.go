// Package notes is the sample module. It keeps notes in its Dapr state store (PostgreSQL behind
// the sidecar, shared by its two replicas), with ETags as HTTP ETag/If-Match and optional
// expiry; publishes notes.note.created through its sidecar (Kafka) and receives that event back
// through a declarative subscription, recording the delivery. It is invoked by other sidecars
// through Dapr service invocation resolved by Consul. A note made for a user (a bearer token)
// belongs to them, and is deleted when they are.
package notes

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	dapr "github.com/dapr/go-sdk/client"
	"github.com/google/uuid"

	auth "github.com/goplt/goplt/apps/auth/client"
	identity "github.com/goplt/goplt/apps/identity/client"
	"github.com/goplt/goplt/apps/notes/contract"
	"github.com/goplt/goplt/apps/notes/permissions"
	"github.com/goplt/goplt/internal/kernel"
)

//go:embed migrations/*.sql
var migrations embed.FS

// idempotentNotes is the UUID namespace of note ids derived from a user and an idempotency key.
var idempotentNotes = uuid.MustParse("6f1c9e52-3b7a-4d8e-9f21-5a0c4e7b2d18")

// Topic is the event published for every new note.
const Topic = "notes.note.created"

// Module is the notes module.
type Module struct {
	k     *kernel.Kernel
	store *store
}

// New returns the module.
func New() *Module { return &Module{} }

// Name implements kernel.Module.
func (m *Module) Name() string { return "notes" }

// Init implements kernel.Module.
func (m *Module) Init(k *kernel.Kernel) error {
	k.UseContracts(contract.Events())
	m.k = k
	m.store = &store{client: k.Dapr, name: k.UseStateStore()}
	k.Migrations(migrations, "migrations")
	k.UseVerifier(auth.New(k.Invoker()).NewVerifier(auth.VerifierOptions{}).Cached(10000))
	k.DefinePermissions(permissions.Declared()...)
	k.UseRoutes(contract.Routes()) // who may call each route: the manifest says
	k.HandleFunc("POST /notes", m.create)
	k.HandleFunc("GET /notes", m.list)
	k.HandleFunc("GET /notes/{id}", m.get)
	k.HandleFunc("PUT /notes/{id}", m.update)
	k.Subscribe(Topic, "/events/note-created", m.noteCreated)
	k.SubscribeDeletions(identity.UserDeletion, "/events/user-deleted", m.userDeleted)
	return nil
}

// Note is the API representation of a note.
type Note struct {
	ID        string    `json:"id"`
	Text      string    `json:"text"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// ExpiresAt is when the note goes (notes made with ttlSeconds).
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	// Delivered says whether the note's created event has come back through the broker.
	Delivered bool `json:"delivered"`
}

func (s *stored) api() Note {
	return Note{ID: s.ID, Text: s.Text, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt, ExpiresAt: s.ExpiresAt, Delivered: s.Delivered}
}

// CreatedEvent is the payload of notes.note.created.
type CreatedEvent struct {
	NoteID string `json:"noteId"`
	Text   string `json:"text"`
}

func validText(w http.ResponseWriter, r *http.Request, text string) bool {
	if n := len(strings.TrimSpace(text)); n == 0 || len(text) > 10000 {
		kernel.WriteError(w, r, http.StatusBadRequest, "invalid_text", "text must be 1 to 10000 bytes and not blank")
		return false
	}
	return true
}

func (m *Module) create(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Text       string `json:"text"`
		TTLSeconds int    `json:"ttlSeconds"`
	}
	if !kernel.DecodeJSON(w, r, 64<<10, &in) || !validText(w, r, in.Text) {
		return
	}
	if in.TTLSeconds < 0 || in.TTLSeconds > 366*24*3600 {
		kernel.WriteError(w, r, http.StatusBadRequest, "invalid_ttl", "ttlSeconds must be 1 to 31622400 (a year), or absent")
		return
	}
	// The owner: the request's user, or nobody for a service calling without a token.
	var owner string
	switch c, err := m.k.Principal(r); {
	case err == nil:
		owner = c.Subject
	case !errors.Is(err, kernel.ErrNoToken):
		m.refuse(w, r, err)
		return
	}
	ctx := r.Context()
	now := time.Now().UTC()
	n := &stored{ID: uuid.NewString(), Text: in.Text, Owner: owner, CreatedAt: now, UpdatedAt: now}
	if key := r.Header.Get("Idempotency-Key"); key != "" && owner != "" {
		// The gateway frees a key when the module answers 5xx, and a 5xx here may follow a
		// write that did land (the store failed after committing, or the note could not be
		// removed again): the retry must find the same note, not make a second one.
		n.ID = uuid.NewSHA1(idempotentNotes, []byte(owner+"\x00"+key)).String()
	}
	if in.TTLSeconds > 0 {
		exp := now.Add(time.Duration(in.TTLSeconds) * time.Second)
		n.ExpiresAt = &exp
	}
	value, _ := json.Marshal(n)
	put := &dapr.StateOperation{Type: dapr.StateOperationTypeUpsert, Item: &dapr.SetStateItem{Key: noteKey(n.ID), Value: value, Metadata: ttlMeta(in.TTLSeconds)}}
	var err error
	if owner == "" {
		err = m.store.withoutIndex(ctx, put)
	} else {
		err = m.store.withIndex(ctx, owner, func(ix *index) (*index, []*dapr.StateOperation, error) {
			switch {
			case ix.Deleted:
				return nil, nil, errGone
			case slices.Contains(ix.Notes, n.ID):
				return ix, nil, nil // a retry of a write that landed: keep that note
			case len(ix.Notes) >= maxNotesPerUser:
				return nil, nil, errTooMany
			}
			return &index{Notes: append(ix.Notes, n.ID)}, []*dapr.StateOperation{put}, nil
		})
	}
	if err != nil {
		m.fail(w, r, "store the note", err)
		return
	}
	// The note and its event stand or fall together: a note whose event the broker did not
	// take is removed again.
	if err := m.k.Publish(ctx, Topic, "note-"+n.ID, CreatedEvent{NoteID: n.ID, Text: n.Text}); err != nil {
		m.k.Log().ErrorContext(ctx, "publish failed; note removed", "err", err)
		if derr := m.remove(context.WithoutCancel(ctx), n); derr != nil {
			m.k.Log().ErrorContext(ctx, "could not remove the unannounced note", "note", n.ID, "err", derr)
		}
		kernel.WriteError(w, r, http.StatusServiceUnavailable, "event_bus_unavailable", "the note could not be announced; try again")
		return
	}
	m.answer(w, r, http.StatusCreated, n.ID)
}

// answer writes a note as stored now, with its ETag.
func (m *Module) answer(w http.ResponseWriter, r *http.Request, status int, id string) {
	n, etag, err := m.store.note(r.Context(), id)
	if err != nil {
		m.fail(w, r, "read the note", err)
		return
	}
	if n == nil {
		kernel.WriteError(w, r, http.StatusNotFound, "note_not_found", "no note with id "+id)
		return
	}
	w.Header().Set("ETag", strconv.Quote(etag))
	kernel.WriteJSON(w, status, n.api())
}

func (m *Module) get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if uuid.Validate(id) != nil {
		kernel.WriteError(w, r, http.StatusNotFound, "note_not_found", "no note with id "+id)
		return
	}
	m.answer(w, r, http.StatusOK, id)
}

// list answers the caller's notes, from their index.
func (m *Module) list(w http.ResponseWriter, r *http.Request) {
	c, err := m.k.Principal(r)
	if err != nil {
		m.refuse(w, r, err)
		return
	}
	var ix index
	if _, _, err := m.store.get(r.Context(), ownerKey(c.Subject), &ix); err != nil {
		m.fail(w, r, "read the index", err)
		return
	}
	notes, err := m.store.notes(r.Context(), ix.Notes)
	if err != nil {
		m.fail(w, r, "read the notes", err)
		return
	}
	out := make([]Note, 0, len(notes))
	for _, n := range notes {
		out = append(out, n.api())
	}
	kernel.WriteJSON(w, http.StatusOK, map[string][]Note{"notes": out})
}

// update replaces a note's text. The client must name the version it read (If-Match: its
// ETag): a stale one is 412, so no write is lost.
func (m *Module) update(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	match := r.Header.Get("If-Match")
	if match == "" {
		kernel.WriteError(w, r, http.StatusPreconditionRequired, "if_match_required", "send If-Match with the note's ETag (from GET /notes/{id})")
		return
	}
	if u, err := strconv.Unquote(match); err == nil {
		match = u
	}
	var in struct {
		Text string `json:"text"`
	}
	if !kernel.DecodeJSON(w, r, 64<<10, &in) || !validText(w, r, in.Text) {
		return
	}
	c, err := m.k.Principal(r)
	if err != nil {
		m.refuse(w, r, err)
		return
	}
	if uuid.Validate(id) != nil {
		kernel.WriteError(w, r, http.StatusNotFound, "note_not_found", "no note with id "+id)
		return
	}
	n, _, err := m.store.note(r.Context(), id)
	switch {
	case err != nil:
		m.fail(w, r, "read the note", err)
		return
	case n == nil:
		kernel.WriteError(w, r, http.StatusNotFound, "note_not_found", "no note with id "+id)
		return
	case n.Owner != c.Subject:
		kernel.WriteError(w, r, http.StatusForbidden, "not_owner", "only the note's author may change it")
		return
	}
	n.Text, n.UpdatedAt = in.Text, time.Now().UTC()
	if err := m.store.replace(r.Context(), n, match); err != nil {
		if errors.Is(err, errStale) {
			kernel.WriteError(w, r, http.StatusPreconditionFailed, "stale_etag", "the note changed since that ETag: read it again")
			return
		}
		m.fail(w, r, "save the note", err)
		return
	}
	m.answer(w, r, http.StatusOK, id)
}

// noteCreated records that a note's event came back through the broker.
func (m *Module) noteCreated(ctx context.Context, e kernel.Event) error {
	var ev CreatedEvent
	if err := e.Decode(&ev); err != nil || ev.NoteID == "" {
		return errors.Join(kernel.ErrDrop, err)
	}
	n, _, err := m.store.note(ctx, ev.NoteID)
	if err != nil || n == nil || n.Delivered {
		return err // nil: gone (deleted or expired) or already marked; else Dapr redelivers
	}
	return m.store.markDelivered(ctx, n)
}

// userDeleted deletes a deleted user's notes and leaves a tombstone in place of their index,
// so no note of theirs is written after this (see store.go).
func (m *Module) userDeleted(ctx context.Context, userID string) error {
	return m.store.withIndex(ctx, userID, func(ix *index) (*index, []*dapr.StateOperation, error) {
		var ops []*dapr.StateOperation
		for _, id := range ix.Notes {
			for _, k := range []string{noteKey(id), deliveredKey(id)} {
				ops = append(ops, &dapr.StateOperation{Type: dapr.StateOperationTypeDelete, Item: &dapr.SetStateItem{Key: k}})
			}
		}
		return &index{Deleted: true}, ops, nil
	})
}

// remove deletes a note (and its place in its owner's index).
func (m *Module) remove(ctx context.Context, n *stored) error {
	del := &dapr.StateOperation{Type: dapr.StateOperationTypeDelete, Item: &dapr.SetStateItem{Key: noteKey(n.ID)}}
	if n.Owner == "" {
		return m.store.withoutIndex(ctx, del)
	}
	return m.store.withIndex(ctx, n.Owner, func(ix *index) (*index, []*dapr.StateOperation, error) {
		return &index{Notes: slices.DeleteFunc(ix.Notes, func(id string) bool { return id == n.ID }), Deleted: ix.Deleted}, []*dapr.StateOperation{del}, nil
	})
}

// refuse answers a request whose token Principal did not accept: 401.
func (m *Module) refuse(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, kernel.ErrSubjectDeleted) {
		m.k.Fail(w, r, "verify the token", err) // 401 subject_deleted
		return
	}
	kernel.WriteError(w, r, http.StatusUnauthorized, "unauthenticated", "a valid bearer token is needed")
}

func (m *Module) fail(w http.ResponseWriter, r *http.Request, step string, err error) {
	switch {
	case errors.Is(err, errGone):
		m.k.Fail(w, r, step, kernel.ErrSubjectDeleted)
	case errors.Is(err, errTooMany):
		kernel.WriteError(w, r, http.StatusConflict, "too_many_notes", err.Error())
	default:
		m.k.Log().ErrorContext(r.Context(), "state store error", "step", step, "err", err)
		w.Header().Set("Retry-After", "2")
		kernel.WriteError(w, r, http.StatusServiceUnavailable, "state_unavailable", "the notes cannot be reached now; retry later")
	}
}
