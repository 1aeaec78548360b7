package authz

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/ory/ladon"

	"github.com/goplt/goplt/apps/authz/client"
	"github.com/goplt/goplt/apps/authz/engine"
	"github.com/goplt/goplt/internal/kernel"
	"github.com/goplt/goplt/internal/policydoc"
)

const (
	maxCheckBody  = 64 << 10
	maxBatchBody  = 1 << 20
	maxPolicyBody = 64 << 10
)

// subjects turns a check's subject into ladon subjects: user:<id>, role:<name>, app:<id>.
func subjects(s client.Subject) []string {
	var out []string
	if s.User != "" {
		out = append(out, policydoc.User(s.User))
	}
	for _, r := range s.Roles {
		out = append(out, policydoc.Role(r))
	}
	if s.App != "" {
		out = append(out, policydoc.App(s.App))
	}
	return out
}

// decideOne answers one check. Anything malformed or unknown is a deny, never an allow.
func (m *Module) decideOne(ctx context.Context, st *state, q client.Check) engine.Decision {
	switch {
	case q.Action == "":
		return engine.Decision{Reason: "no action"}
	case !m.permissions[q.Action]:
		return engine.Decision{Reason: "unknown permission " + q.Action}
	}
	subs := subjects(q.Subject)
	if len(subs) == 0 {
		return engine.Decision{Reason: "no subject"}
	}
	return st.engine.DecideAny(ctx, subs, q.Action, q.Resource, ladon.Context(q.Context))
}

// view returns the current policies, or answers 503 (a deny for every client) while none are
// loaded.
func (m *Module) view(w http.ResponseWriter, r *http.Request) *state {
	st := m.cur.Load()
	if st == nil {
		kernel.WriteError(w, r, http.StatusServiceUnavailable, "policies_unavailable", "policies are not loaded")
	}
	return st
}

func (m *Module) decide(w http.ResponseWriter, r *http.Request) {
	var q client.Check
	if !kernel.DecodeJSON(w, r, maxCheckBody, &q) {
		return
	}
	st := m.view(w, r)
	if st == nil {
		return
	}
	kernel.WriteJSON(w, http.StatusOK, m.decideOne(r.Context(), st, q))
}

func (m *Module) decideBatch(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Checks []client.Check `json:"checks"`
	}
	if !kernel.DecodeJSON(w, r, maxBatchBody, &in) {
		return
	}
	if len(in.Checks) == 0 || len(in.Checks) > client.MaxBatch {
		kernel.WriteError(w, r, http.StatusBadRequest, "invalid_batch", "checks: want 1 to 100")
		return
	}
	st := m.view(w, r)
	if st == nil {
		return
	}
	out := make([]engine.Decision, len(in.Checks))
	for i, q := range in.Checks {
		out[i] = m.decideOne(r.Context(), st, q)
	}
	kernel.WriteJSON(w, http.StatusOK, map[string][]engine.Decision{"decisions": out})
}

// StoredPolicy is a runtime policy as the admin API returns it.
type StoredPolicy struct {
	Policy    json.RawMessage `json:"policy"`
	Revision  int64           `json:"revision"`
	UpdatedAt time.Time       `json:"updatedAt"`
	UpdatedBy string          `json:"updatedBy"`
}

func (m *Module) listPolicies(w http.ResponseWriter, r *http.Request) {
	rows, err := m.k.DB().Query(r.Context(), `SELECT document, revision, updated_at, updated_by FROM policies ORDER BY id`)
	if err != nil {
		m.k.Fail(w, r, "list policies", err)
		return
	}
	out := []StoredPolicy{}
	for rows.Next() {
		var p StoredPolicy
		if err := rows.Scan(&p.Policy, &p.Revision, &p.UpdatedAt, &p.UpdatedBy); err != nil {
			rows.Close()
			m.k.Fail(w, r, "list policies", err)
			return
		}
		out = append(out, p)
	}
	rows.Close()
	kernel.WriteJSON(w, http.StatusOK, map[string]any{"policies": out, "revision": m.revision()})
}

func (m *Module) revision() int64 {
	if st := m.cur.Load(); st != nil {
		return st.revision
	}
	return 0
}

func (m *Module) getPolicy(w http.ResponseWriter, r *http.Request) {
	var p StoredPolicy
	err := m.k.DB().QueryRow(r.Context(), `SELECT document, revision, updated_at, updated_by FROM policies WHERE id = $1`, r.PathValue("id")).
		Scan(&p.Policy, &p.Revision, &p.UpdatedAt, &p.UpdatedBy)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		kernel.WriteError(w, r, http.StatusNotFound, "not_found", "no runtime policy with this id")
	case err != nil:
		m.k.Fail(w, r, "get policy", err)
	default:
		kernel.WriteJSON(w, http.StatusOK, p)
	}
}

// actor names who changed a policy: the calling app (as its sidecar proved it).
func actor(r *http.Request) string { return policydoc.App(r.Header.Get("dapr-caller-app-id")) }

// putPolicy creates or replaces a runtime policy. The body is a ladon policy; its id, if
// given, must equal the path's.
func (m *Module) putPolicy(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPolicyBody))
	if err != nil {
		kernel.WriteError(w, r, http.StatusRequestEntityTooLarge, "body_too_large", "policy exceeds 64 KiB")
		return
	}
	// Strict shape first (unknown fields are refused), then ladon's own decoding (conditions).
	var shape struct {
		policydoc.Policy
		Meta json.RawMessage `json:"meta"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&shape); err != nil {
		kernel.WriteError(w, r, http.StatusBadRequest, "invalid_json", err.Error())
		return
	}
	p := &ladon.DefaultPolicy{}
	if err := json.Unmarshal(body, p); err != nil {
		kernel.WriteError(w, r, http.StatusBadRequest, "invalid_policy", "conditions: "+err.Error())
		return
	}
	if p.ID == "" {
		p.ID = id
	}
	if p.ID != id {
		kernel.WriteError(w, r, http.StatusBadRequest, "invalid_policy", "the body's id differs from the path's")
		return
	}
	if err := validatePolicy(p); err != nil {
		kernel.WriteError(w, r, http.StatusBadRequest, "invalid_policy", err.Error())
		return
	}
	if _, err := engine.New([]ladon.Policy{p}); err != nil {
		kernel.WriteError(w, r, http.StatusBadRequest, "invalid_policy", err.Error())
		return
	}
	doc, err := json.Marshal(p)
	if err != nil {
		m.k.Fail(w, r, "encode policy", err)
		return
	}
	ctx := r.Context()
	var rev int64
	err = m.write(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT nextval('policy_revision')`).Scan(&rev); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO policies (id, revision, document, updated_by) VALUES ($1, $2, $3, $4)
			ON CONFLICT (id) DO UPDATE SET revision = $2, document = $3, updated_at = now(), updated_by = $4`, id, rev, doc, actor(r)); err != nil {
			return err
		}
		return m.recordChange(ctx, tx, rev, id, "put", doc, actor(r))
	})
	if err != nil {
		m.k.Fail(w, r, "store policy", err)
		return
	}
	kernel.WriteJSON(w, http.StatusOK, StoredPolicy{Policy: doc, Revision: rev, UpdatedAt: time.Now().UTC(), UpdatedBy: actor(r)})
}

func (m *Module) deletePolicy(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ctx := r.Context()
	err := m.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM policies WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return pgx.ErrNoRows
		}
		var rev int64
		if err := tx.QueryRow(ctx, `SELECT nextval('policy_revision')`).Scan(&rev); err != nil {
			return err
		}
		return m.recordChange(ctx, tx, rev, id, "delete", nil, actor(r))
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		kernel.WriteError(w, r, http.StatusNotFound, "not_found", "no runtime policy with this id")
	case err != nil:
		m.k.Fail(w, r, "delete policy", err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// write runs a policy change in a transaction serialised with other writers (so revisions
// commit in order), then reloads this replica and kicks the relay.
func (m *Module) write(ctx context.Context, f func(pgx.Tx) error) error {
	err := m.k.Transact(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('authz.policies'))`); err != nil {
			return err
		}
		return f(tx)
	})
	if err != nil {
		return err
	}
	if err := m.reload(ctx); err != nil {
		m.k.Log().WarnContext(ctx, "reload after a policy change failed; the poller retries", "err", err)
	}
	return nil
}

func (m *Module) recordChange(ctx context.Context, tx pgx.Tx, rev int64, id, op string, doc []byte, who string) error {
	if _, err := tx.Exec(ctx, `INSERT INTO policy_history (revision, id, op, document, actor) VALUES ($1, $2, $3, $4, $5)`, rev, id, op, doc, who); err != nil {
		return err
	}
	_, err := m.k.Emit(ctx, tx, client.TopicPolicyChanged, client.PolicyChange{Version: 1, PolicyID: id, Op: op, Revision: rev, Actor: who, At: time.Now().UTC()})
	return err
}
