package identity

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/goplt/goplt/apps/identity/client"
	"github.com/goplt/goplt/internal/emailaddr"
	"github.com/goplt/goplt/internal/kernel"
	"github.com/goplt/goplt/internal/password"
)

// maxBody bounds every identity request body; a password over password.MaxBytes inside it is
// refused before hashing.
const maxBody = 16 << 10

var errEmailTaken = errors.New("email taken")

const userColumns = `u.id::text, u.email, u.display_name, u.status, u.created_at, u.updated_at, u.principal_version,
	COALESCE((SELECT array_agg(r.role ORDER BY r.role) FROM user_roles r WHERE r.user_id = u.id), '{}')`

func scanUser(row pgx.Row) (*client.User, error) {
	var u client.User
	err := row.Scan(&u.ID, &u.Email, &u.DisplayName, &u.Status, &u.CreatedAt, &u.UpdatedAt, &u.PrincipalVersion, &u.Roles)
	return &u, err
}

func userEvent(u *client.User) client.UserEvent {
	return client.UserEvent{Version: client.EventVersion, UserID: u.ID, Email: u.Email, DisplayName: u.DisplayName, Status: u.Status, Roles: u.Roles,
		PrincipalVersion: u.PrincipalVersion, At: time.Now().UTC()}
}

func (m *Module) createUser(ctx context.Context, email, pw, name string, roles []string) (*client.User, error) {
	hash, err := m.hasher.Hash(pw)
	if err != nil {
		return nil, err
	}
	var u *client.User
	err = m.k.Transact(ctx, func(tx pgx.Tx) error {
		var id string
		err := tx.QueryRow(ctx, `INSERT INTO users (email, display_name, password_hash) VALUES ($1, $2, $3)
			ON CONFLICT (email) DO NOTHING RETURNING id::text`, email, name, hash).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return errEmailTaken
		}
		if err != nil {
			return err
		}
		for _, r := range roles {
			if _, err := tx.Exec(ctx, `INSERT INTO user_roles (user_id, role) VALUES ($1, $2)`, id, r); err != nil {
				return err
			}
		}
		if u, err = scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users u WHERE u.id = $1`, id)); err != nil {
			return err
		}
		_, err = m.k.Emit(ctx, tx, client.TopicUserCreated, userEvent(u))
		return err
	})
	return u, err
}

func validName(s string) bool {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > 100 {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func (m *Module) register(w http.ResponseWriter, r *http.Request) {
	var in client.Registration
	if !kernel.DecodeJSON(w, r, maxBody, &in) {
		return
	}
	email, err := emailaddr.Normalize(in.Email)
	if err != nil {
		kernel.WriteError(w, r, http.StatusBadRequest, "invalid_email", err.Error())
		return
	}
	if err := password.Check(in.Password); err != nil {
		kernel.WriteError(w, r, http.StatusBadRequest, "invalid_password", err.Error())
		return
	}
	name := strings.TrimSpace(in.DisplayName)
	if !validName(name) {
		kernel.WriteError(w, r, http.StatusBadRequest, "invalid_display_name", "display name must be at most 100 characters without control characters")
		return
	}
	u, err := m.createUser(r.Context(), email, in.Password, name, m.defaultRoles)
	switch {
	case errors.Is(err, errEmailTaken):
		kernel.WriteError(w, r, http.StatusConflict, "email_taken", "a user with this email already exists")
	case err != nil:
		m.k.Fail(w, r, "register", err)
	default:
		kernel.WriteJSON(w, http.StatusCreated, u)
	}
}

// userID reads and checks the {id} path parameter; on failure it has answered.
func userID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil || len(r.PathValue("id")) != 36 {
		kernel.WriteError(w, r, http.StatusBadRequest, "invalid_id", "user id must be a UUID")
		return "", false
	}
	return id.String(), true
}

func (m *Module) get(w http.ResponseWriter, r *http.Request) {
	id, ok := userID(w, r)
	if !ok {
		return
	}
	u, err := scanUser(m.k.DB().QueryRow(r.Context(), `SELECT `+userColumns+` FROM users u WHERE u.id = $1`, id))
	m.answerUser(w, r, u, err)
}

func (m *Module) answerUser(w http.ResponseWriter, r *http.Request, u *client.User, err error) {
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		kernel.WriteError(w, r, http.StatusNotFound, "not_found", "no such user")
	case err != nil:
		m.k.Fail(w, r, "user query", err)
	default:
		kernel.WriteJSON(w, http.StatusOK, u)
	}
}

// list pages through users ordered by creation, optionally filtered by exact (normalized)
// email and by status. The cursor is opaque: the position after the page's last user.
func (m *Module) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 50
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 500 {
			kernel.WriteError(w, r, http.StatusBadRequest, "invalid_limit", "limit must be 1-500")
			return
		}
		limit = n
	}
	var after int64
	if c := q.Get("cursor"); c != "" {
		b, err := base64.RawURLEncoding.DecodeString(c)
		if err == nil {
			after, err = strconv.ParseInt(strings.TrimPrefix(string(b), "u:"), 10, 64)
		}
		if err != nil || !strings.HasPrefix(string(b), "u:") || after < 0 {
			kernel.WriteError(w, r, http.StatusBadRequest, "invalid_cursor", "cursor is not one this API returned")
			return
		}
	}
	var email *string
	if e := q.Get("email"); e != "" {
		n, err := emailaddr.Normalize(e)
		if err != nil {
			kernel.WriteError(w, r, http.StatusBadRequest, "invalid_email", err.Error())
			return
		}
		email = &n
	}
	var status *string
	if s := q.Get("status"); s != "" {
		if s != client.StatusActive && s != client.StatusDisabled {
			kernel.WriteError(w, r, http.StatusBadRequest, "invalid_status", "status must be active or disabled")
			return
		}
		status = &s
	}
	rows, err := m.k.DB().Query(r.Context(), `SELECT u.seq, `+userColumns+` FROM users u
		WHERE u.seq > $1 AND ($2::text IS NULL OR u.email = $2) AND ($3::text IS NULL OR u.status = $3)
		ORDER BY u.seq LIMIT $4`, after, email, status, limit+1)
	if err != nil {
		m.k.Fail(w, r, "list users", err)
		return
	}
	defer rows.Close()
	page := client.UserPage{Users: []client.User{}}
	var seqs []int64
	for rows.Next() {
		var u client.User
		var seq int64
		if err := rows.Scan(&seq, &u.ID, &u.Email, &u.DisplayName, &u.Status, &u.CreatedAt, &u.UpdatedAt, &u.PrincipalVersion, &u.Roles); err != nil {
			m.k.Fail(w, r, "list users", err)
			return
		}
		page.Users = append(page.Users, u)
		seqs = append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		m.k.Fail(w, r, "list users", err)
		return
	}
	if len(page.Users) > limit {
		page.Users = page.Users[:limit]
		page.NextCursor = base64.RawURLEncoding.EncodeToString([]byte("u:" + strconv.FormatInt(seqs[limit-1], 10)))
	}
	kernel.WriteJSON(w, http.StatusOK, page)
}

// change runs f on the locked user row inside a transaction and answers with the result.
// f returns the topic and payload to announce (topic "" for none).
func (m *Module) change(w http.ResponseWriter, r *http.Request, f func(ctx context.Context, tx pgx.Tx, u *client.User) (string, any, error)) {
	id, ok := userID(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	var u *client.User
	err := m.k.Transact(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, id); err != nil {
			return err
		}
		var err error
		if u, err = scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users u WHERE u.id = $1`, id)); err != nil {
			return err
		}
		topic, payload, err := f(ctx, tx, u)
		if err != nil || topic == "" {
			return err
		}
		if u, err = scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users u WHERE u.id = $1`, id)); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if payload == nil {
			payload = userEvent(u)
		}
		_, err = m.k.Emit(ctx, tx, topic, payload)
		return err
	})
	m.answerUser(w, r, u, err)
}

func (m *Module) update(w http.ResponseWriter, r *http.Request) {
	var in struct {
		DisplayName *string `json:"displayName"`
	}
	if !kernel.DecodeJSON(w, r, maxBody, &in) {
		return
	}
	if in.DisplayName == nil || !validName(strings.TrimSpace(*in.DisplayName)) {
		kernel.WriteError(w, r, http.StatusBadRequest, "invalid_display_name", "displayName is required: at most 100 characters without control characters")
		return
	}
	m.change(w, r, func(ctx context.Context, tx pgx.Tx, u *client.User) (string, any, error) {
		_, err := tx.Exec(ctx, `UPDATE users SET display_name = $2, updated_at = now() WHERE id = $1`, u.ID, strings.TrimSpace(*in.DisplayName))
		return client.TopicUserUpdated, nil, err
	})
}

func (m *Module) setStatus(status string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		m.change(w, r, func(ctx context.Context, tx pgx.Tx, u *client.User) (string, any, error) {
			if u.Status == status {
				return "", nil, nil // already so: idempotent, no event
			}
			_, err := tx.Exec(ctx, `UPDATE users SET status = $2, updated_at = now(), principal_version = principal_version + 1 WHERE id = $1`, u.ID, status)
			topic := client.TopicUserUpdated
			if status == client.StatusDisabled {
				topic = client.TopicUserDisabled
			}
			return topic, nil, err
		})
	}
}

func (m *Module) setRoles(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Roles []string `json:"roles"`
	}
	if !kernel.DecodeJSON(w, r, maxBody, &in) {
		return
	}
	if in.Roles == nil || len(in.Roles) > 100 {
		kernel.WriteError(w, r, http.StatusBadRequest, "invalid_roles", "roles is required: a list of at most 100 role names")
		return
	}
	slices.Sort(in.Roles)
	in.Roles = slices.Compact(in.Roles)
	for _, role := range in.Roles {
		if !m.roles[role] {
			kernel.WriteError(w, r, http.StatusBadRequest, "unknown_role", "no module declares role "+strconv.Quote(role))
			return
		}
	}
	m.change(w, r, func(ctx context.Context, tx pgx.Tx, u *client.User) (string, any, error) {
		if slices.Equal(u.Roles, in.Roles) {
			return "", nil, nil
		}
		if _, err := tx.Exec(ctx, `DELETE FROM user_roles WHERE user_id = $1`, u.ID); err != nil {
			return "", nil, err
		}
		for _, role := range in.Roles {
			if _, err := tx.Exec(ctx, `INSERT INTO user_roles (user_id, role) VALUES ($1, $2)`, u.ID, role); err != nil {
				return "", nil, err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE users SET updated_at = now(), principal_version = principal_version + 1 WHERE id = $1`, u.ID); err != nil {
			return "", nil, err
		}
		return client.TopicRolesChanged, client.RolesChangedEvent{Version: client.EventVersion, UserID: u.ID, Roles: in.Roles, Previous: u.Roles,
			PrincipalVersion: u.PrincipalVersion + 1, At: time.Now().UTC()}, nil
	})
}

func (m *Module) delete(w http.ResponseWriter, r *http.Request) {
	id, ok := userID(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	err := m.k.Transact(ctx, func(tx pgx.Tx) error {
		var version int64
		if err := tx.QueryRow(ctx, `DELETE FROM users WHERE id = $1 RETURNING principal_version`, id).Scan(&version); err != nil {
			return err // pgx.ErrNoRows: no such user
		}
		_, err := m.k.Emit(ctx, tx, client.TopicUserDeleted, client.UserEvent{Version: client.EventVersion, UserID: id, Roles: []string{},
			PrincipalVersion: version + 1, At: time.Now().UTC()})
		return err
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		kernel.WriteError(w, r, http.StatusNotFound, "not_found", "no such user")
	case err != nil:
		m.k.Fail(w, r, "delete user", err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// verifyCredentials checks an email and password for auth. An unknown email costs one
// argon2id verification like a known one, and both get the same answer.
func (m *Module) verifyCredentials(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if !kernel.DecodeJSON(w, r, maxBody, &in) {
		return
	}
	invalid := func() {
		kernel.WriteError(w, r, http.StatusUnauthorized, "invalid_credentials", "wrong email or password")
	}
	if len(in.Password) > password.MaxBytes {
		invalid()
		return
	}
	email, emailErr := emailaddr.Normalize(in.Email)
	ctx := r.Context()
	var p client.Principal
	var hash string
	err := emailErr
	if err == nil {
		err = m.k.DB().QueryRow(ctx, `SELECT u.id::text, u.email, u.status, u.principal_version, u.password_hash,
			COALESCE((SELECT array_agg(r.role ORDER BY r.role) FROM user_roles r WHERE r.user_id = u.id), '{}')
			FROM users u WHERE u.email = $1`, email).Scan(&p.UserID, &p.Email, &p.Status, &p.Version, &hash, &p.Roles)
	}
	if err != nil && !errors.Is(err, pgx.ErrNoRows) && emailErr == nil {
		m.k.Fail(w, r, "verify credentials", err)
		return
	}
	if err != nil {
		_, _, _ = m.hasher.Verify(in.Password, m.dummy)
		invalid()
		return
	}
	ok, rehash, err := m.hasher.Verify(in.Password, hash)
	if err != nil {
		m.k.Fail(w, r, "verify credentials", err)
		return
	}
	if !ok {
		invalid()
		return
	}
	if rehash {
		// Parameters were raised since this hash was made: store a fresh one now that we
		// know the password. A failure only postpones it to the next login.
		if h, err := m.hasher.Hash(in.Password); err == nil {
			if _, err := m.k.DB().Exec(ctx, `UPDATE users SET password_hash = $2 WHERE id = $1 AND password_hash = $3`, p.UserID, h, hash); err != nil {
				m.k.Log().WarnContext(ctx, "password rehash failed", "user_id", p.UserID, "err", err)
			}
		}
	}
	if p.Status != client.StatusActive {
		kernel.WriteError(w, r, http.StatusForbidden, "account_disabled", "this account is disabled")
		return
	}
	kernel.WriteJSON(w, http.StatusOK, p)
}

// principal returns a user's status and roles, for auth's token refresh.
func (m *Module) principal(w http.ResponseWriter, r *http.Request) {
	id, ok := userID(w, r)
	if !ok {
		return
	}
	var p client.Principal
	err := m.k.DB().QueryRow(r.Context(), `SELECT u.id::text, u.email, u.status, u.principal_version,
		COALESCE((SELECT array_agg(r.role ORDER BY r.role) FROM user_roles r WHERE r.user_id = u.id), '{}')
		FROM users u WHERE u.id = $1`, id).Scan(&p.UserID, &p.Email, &p.Status, &p.Version, &p.Roles)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		kernel.WriteError(w, r, http.StatusNotFound, "not_found", "no such user")
	case err != nil:
		m.k.Fail(w, r, "principal", err)
	default:
		kernel.WriteJSON(w, http.StatusOK, p)
	}
}
