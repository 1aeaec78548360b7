// Package blog is an example module: posts with create, read, update, delete and publish.
// It shows the pieces a module uses: its manifest's permissions, roles and an owner-only
// policy (manifests/blog.yaml); the generated permission constants; the kernel (routes,
// migrations, subscriptions, the verified principal); the authz client for object-level checks;
// and the transactional outbox for its events. See apps/blog/README.md.
package blog

import (
	"context"
	"embed"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	auth "github.com/goplt/goplt/apps/auth/client"
	authz "github.com/goplt/goplt/apps/authz/client"
	"github.com/goplt/goplt/apps/blog/contract"
	"github.com/goplt/goplt/apps/blog/permissions"
	identity "github.com/goplt/goplt/apps/identity/client"
	"github.com/goplt/goplt/internal/kernel"
	"github.com/goplt/goplt/internal/policydoc"
	"github.com/goplt/goplt/internal/token"
)

//go:embed migrations/*.sql
var migrations embed.FS

// TopicPostPublished is announced when a post is published.
const TopicPostPublished = "blog.post.published"

// Post is a post as the API returns it.
type Post struct {
	ID          string     `json:"id"`
	AuthorID    *string    `json:"authorId"`
	AuthorName  string     `json:"authorName"`
	Title       string     `json:"title"`
	Body        string     `json:"body"`
	Status      string     `json:"status"`
	CreatedAt   time.Time  `json:"createdAt"`
	UpdatedAt   time.Time  `json:"updatedAt"`
	PublishedAt *time.Time `json:"publishedAt,omitempty"`
}

// PublishedEvent is the payload (schema version 1) of blog.post.published.
type PublishedEvent struct {
	Version  int       `json:"version"`
	PostID   string    `json:"postId"`
	AuthorID string    `json:"authorId"`
	Title    string    `json:"title"`
	At       time.Time `json:"at"`
}

// PartitionKey keeps one post's events in order (outbox.Keyed).
func (e PublishedEvent) PartitionKey() string { return e.PostID }

// Module is the blog module.
type Module struct {
	k     *kernel.Kernel
	authz *authz.Client
}

// New returns the module.
func New() *Module { return &Module{} }

// Name implements kernel.Module.
func (m *Module) Name() string { return "blog" }

// Init implements kernel.Module.
func (m *Module) Init(k *kernel.Kernel) error {
	k.UseContracts(contract.Events())
	m.k = k
	k.Migrations(migrations, "migrations")
	k.UseOutbox()
	k.UseVerifier(auth.New(k.Invoker()).NewVerifier(auth.VerifierOptions{}).Cached(10000))
	m.authz = authz.New(k.Invoker(), time.Second)
	k.DefinePermissions(permissions.Declared()...)
	k.UseRoutes(contract.Routes()) // who may call each route: the manifest says
	k.HandleFunc("POST /blog/posts", m.create)
	k.HandleFunc("GET /blog/posts", m.listPublished)
	k.HandleFunc("GET /blog/posts/{id}", m.get)
	k.HandleFunc("GET /blog/me/posts", m.listMine)
	k.HandleFunc("PUT /blog/posts/{id}", m.update)
	k.HandleFunc("DELETE /blog/posts/{id}", m.delete)
	k.HandleFunc("POST /blog/posts/{id}/publish", m.publish)
	k.SubscribeDeletions(identity.UserDeletion, "/events/user-deleted", m.userDeleted)
	return nil
}

// Start implements kernel.Starter.
func (m *Module) Start(ctx context.Context) error {
	return nil
}

const postColumns = `id::text, author_id::text, author_name, title, body, status, created_at, updated_at, published_at`

func scanPost(row pgx.Row) (*Post, error) {
	var p Post
	err := row.Scan(&p.ID, &p.AuthorID, &p.AuthorName, &p.Title, &p.Body, &p.Status, &p.CreatedAt, &p.UpdatedAt, &p.PublishedAt)
	return &p, err
}

// principal answers 401 when the request carries no valid token.
func (m *Module) principal(w http.ResponseWriter, r *http.Request) (*token.Claims, bool) {
	c, err := m.k.Principal(r)
	if err != nil {
		kernel.WriteError(w, r, http.StatusUnauthorized, "unauthenticated", "a valid bearer token is required")
		return nil, false
	}
	return c, true
}

type postInput struct {
	Title string `json:"title"`
	Body  string `json:"body"`
}

func (in *postInput) check(w http.ResponseWriter, r *http.Request) bool {
	in.Title = strings.TrimSpace(in.Title)
	if in.Title == "" || utf8.RuneCountInString(in.Title) > 200 || len(in.Body) > 100_000 || !utf8.ValidString(in.Body) {
		kernel.WriteError(w, r, http.StatusBadRequest, "invalid_post", "title must be 1-200 characters and body at most 100 kB of UTF-8")
		return false
	}
	return true
}

func (m *Module) create(w http.ResponseWriter, r *http.Request) {
	c, ok := m.principal(w, r)
	if !ok {
		return
	}
	var in postInput
	if !kernel.DecodeJSON(w, r, 128<<10, &in) || !in.check(w, r) {
		return
	}
	p, err := scanPost(m.k.DB().QueryRow(r.Context(), `INSERT INTO posts (author_id, title, body) VALUES ($1, $2, $3) RETURNING `+postColumns,
		c.Subject, in.Title, in.Body))
	if err != nil {
		m.k.Fail(w, r, "create post", err)
		return
	}
	kernel.WriteJSON(w, http.StatusCreated, p)
}

func postID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil || len(r.PathValue("id")) != 36 {
		kernel.WriteError(w, r, http.StatusBadRequest, "invalid_id", "post id must be a UUID")
		return "", false
	}
	return id.String(), true
}

// get shows a published post to anyone, and a draft to its author only (404 to others).
func (m *Module) get(w http.ResponseWriter, r *http.Request) {
	id, ok := postID(w, r)
	if !ok {
		return
	}
	p, err := scanPost(m.k.DB().QueryRow(r.Context(), `SELECT `+postColumns+` FROM posts WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		kernel.WriteError(w, r, http.StatusNotFound, "not_found", "no such post")
		return
	}
	if err != nil {
		m.k.Fail(w, r, "get post", err)
		return
	}
	if p.Status != "published" {
		c, err := m.k.Principal(r)
		if err != nil || p.AuthorID == nil || *p.AuthorID != c.Subject {
			kernel.WriteError(w, r, http.StatusNotFound, "not_found", "no such post")
			return
		}
	}
	kernel.WriteJSON(w, http.StatusOK, p)
}

func (m *Module) list(w http.ResponseWriter, r *http.Request, where string, args ...any) {
	rows, err := m.k.DB().Query(r.Context(), `SELECT `+postColumns+` FROM posts WHERE `+where+` ORDER BY seq DESC LIMIT 100`, args...)
	if err != nil {
		m.k.Fail(w, r, "list posts", err)
		return
	}
	defer rows.Close()
	out := []*Post{}
	for rows.Next() {
		p, err := scanPost(rows)
		if err != nil {
			m.k.Fail(w, r, "list posts", err)
			return
		}
		out = append(out, p)
	}
	kernel.WriteJSON(w, http.StatusOK, map[string]any{"posts": out})
}

func (m *Module) listPublished(w http.ResponseWriter, r *http.Request) {
	m.list(w, r, `status = 'published'`)
}

func (m *Module) listMine(w http.ResponseWriter, r *http.Request) {
	c, ok := m.principal(w, r)
	if !ok {
		return
	}
	m.list(w, r, `author_id = $1`, c.Subject)
}

// owned loads the post and asks authz whether the caller may do action on it. The check names
// the user alone (not its roles), so only the author policy in manifests/blog.yaml, whose
// condition compares the post's owner with the subject, can allow it. On failure it answered.
func (m *Module) owned(w http.ResponseWriter, r *http.Request, tx pgx.Tx, action string) (*Post, bool) {
	c, ok := m.principal(w, r)
	if !ok {
		return nil, false
	}
	id, ok := postID(w, r)
	if !ok {
		return nil, false
	}
	p, err := scanPost(tx.QueryRow(r.Context(), `SELECT `+postColumns+` FROM posts WHERE id = $1 FOR UPDATE`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		kernel.WriteError(w, r, http.StatusNotFound, "not_found", "no such post")
		return nil, false
	}
	if err != nil {
		m.k.Fail(w, r, "load post", err)
		return nil, false
	}
	owner := ""
	if p.AuthorID != nil {
		owner = policydoc.User(*p.AuthorID)
	}
	d := m.authz.Check(r.Context(), authz.Check{Subject: authz.Subject{User: c.Subject}, Action: action,
		Resource: "blog:post:" + p.ID, Context: map[string]any{"owner": owner}})
	if d.Unavailable {
		kernel.WriteError(w, r, http.StatusServiceUnavailable, "authz_unavailable", "authorization is unavailable")
		return nil, false
	}
	if !d.Allowed {
		kernel.WriteError(w, r, http.StatusForbidden, "not_owner", "only the author may do this")
		return nil, false
	}
	return p, true
}

// errAnswered ends a transaction whose handler already answered (an error response).
var errAnswered = errors.New("answered")

// inTx runs f in a transaction (the kernel kicks the outbox relay after a commit) and answers
// with f's status and body only once the commit succeeded. f returns ok=false after answering
// an error itself.
func (m *Module) inTx(w http.ResponseWriter, r *http.Request, f func(tx pgx.Tx) (status int, body any, ok bool)) {
	var status int
	var body any
	err := m.k.Transact(r.Context(), func(tx pgx.Tx) error {
		var ok bool
		if status, body, ok = f(tx); !ok {
			return errAnswered
		}
		return nil
	})
	switch {
	case errors.Is(err, errAnswered):
	case err != nil:
		m.k.Fail(w, r, "commit", err)
	case body == nil:
		w.WriteHeader(status)
	default:
		kernel.WriteJSON(w, status, body)
	}
}

func (m *Module) update(w http.ResponseWriter, r *http.Request) {
	var in postInput
	if !kernel.DecodeJSON(w, r, 128<<10, &in) || !in.check(w, r) {
		return
	}
	m.inTx(w, r, func(tx pgx.Tx) (int, any, bool) {
		p, ok := m.owned(w, r, tx, permissions.PostUpdate)
		if !ok {
			return 0, nil, false
		}
		p, err := scanPost(tx.QueryRow(r.Context(), `UPDATE posts SET title = $2, body = $3, updated_at = now() WHERE id = $1 RETURNING `+postColumns, p.ID, in.Title, in.Body))
		if err != nil {
			m.k.Fail(w, r, "update post", err)
			return 0, nil, false
		}
		return http.StatusOK, p, true
	})
}

func (m *Module) delete(w http.ResponseWriter, r *http.Request) {
	m.inTx(w, r, func(tx pgx.Tx) (int, any, bool) {
		p, ok := m.owned(w, r, tx, permissions.PostDelete)
		if !ok {
			return 0, nil, false
		}
		if _, err := tx.Exec(r.Context(), `DELETE FROM posts WHERE id = $1`, p.ID); err != nil {
			m.k.Fail(w, r, "delete post", err)
			return 0, nil, false
		}
		return http.StatusNoContent, nil, true
	})
}

func (m *Module) publish(w http.ResponseWriter, r *http.Request) {
	m.inTx(w, r, func(tx pgx.Tx) (int, any, bool) {
		p, ok := m.owned(w, r, tx, permissions.PostPublish)
		if !ok {
			return 0, nil, false
		}
		if p.Status == "published" {
			return http.StatusOK, p, true // idempotent: no second event
		}
		p, err := scanPost(tx.QueryRow(r.Context(), `UPDATE posts SET status = 'published', published_at = now(), updated_at = now() WHERE id = $1 RETURNING `+postColumns, p.ID))
		if err == nil {
			_, err = m.k.Emit(r.Context(), tx, TopicPostPublished, PublishedEvent{Version: 1, PostID: p.ID, AuthorID: *p.AuthorID, Title: p.Title, At: time.Now().UTC()})
		}
		if err != nil {
			m.k.Fail(w, r, "publish post", err)
			return 0, nil, false
		}
		return http.StatusOK, p, true
	})
}

// userDeleted anonymises the posts of a deleted user: they stay, without an author. The kernel
// has already recorded the deletion, so no write of the user's lands after this.
func (m *Module) userDeleted(ctx context.Context, userID string) error {
	_, err := m.k.DB().Exec(ctx, `UPDATE posts SET author_id = NULL, author_name = 'deleted user', updated_at = now() WHERE author_id = $1`, userID)
	return err // idempotent: a redelivery finds nothing left to change
}
