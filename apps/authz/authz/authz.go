// Package authz is the authorization service: it answers "may this subject do this action on
// this resource?" from ory/ladon policies (the compiled role grants plus policies added at run
// time through its admin API), fast (package engine) and fail-closed. Runtime policy changes
// are stored with a revision, announced on authz.policy.changed (through the outbox), and
// picked up by every replica: from that event (a broadcast subscription) and, as a safety net,
// by polling the latest revision.
package authz

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/ory/ladon"

	"github.com/goplt/goplt/apps/authz/client"
	"github.com/goplt/goplt/apps/authz/contract"
	"github.com/goplt/goplt/apps/authz/engine"
	"github.com/goplt/goplt/apps/authz/permissions"
	"github.com/goplt/goplt/internal/envvar"
	"github.com/goplt/goplt/internal/kernel"
	"github.com/goplt/goplt/internal/policydoc"
)

//go:embed migrations/*.sql
var migrations embed.FS

// defaultPoll bounds how stale a replica can be if it missed a change event
// (GOPLT_AUTHZ_POLL overrides it).
const defaultPoll = 2 * time.Second

// state is one consistent view: the engine over compiled + runtime policies at a revision.
type state struct {
	engine   *engine.Engine
	revision int64
}

// Module is the authz module.
type Module struct {
	k           *kernel.Kernel
	compiled    []ladon.Policy
	permissions map[string]bool
	cur         atomic.Pointer[state]
}

// New returns the module.
func New() *Module { return &Module{} }

// Name implements kernel.Module.
func (m *Module) Name() string { return "authz" }

// Init implements kernel.Module.
func (m *Module) Init(k *kernel.Kernel) error {
	k.UseContracts(contract.Events())
	m.k = k
	k.Migrations(migrations, "migrations")
	k.UseOutbox()
	k.DefinePermissions(permissions.Declared()...)
	k.UseRoutes(contract.Routes()) // who may call each route: the manifest says
	k.HandleFunc("POST /internal/decisions", m.decide)
	k.HandleFunc("POST /internal/decisions/batch", m.decideBatch)
	k.HandleFunc("GET /authz/policies", m.listPolicies)
	k.HandleFunc("GET /authz/policies/{id}", m.getPolicy)
	k.HandleFunc("PUT /authz/policies/{id}", m.putPolicy)
	k.HandleFunc("DELETE /authz/policies/{id}", m.deletePolicy)
	k.Subscribe(client.TopicPolicyChanged, "/events/policy-changed", m.policyChanged)
	return nil
}

// Start implements kernel.Starter: it loads the compiled policies and the runtime ones, then
// keeps the view current.
func (m *Module) Start(ctx context.Context) error {
	if err := m.loadCompiled(os.Getenv(envvar.Policies)); err != nil {
		return err
	}
	if err := m.reload(ctx); err != nil {
		return err
	}
	every := defaultPoll
	if v := os.Getenv(envvar.AuthzPoll); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("GOPLT_AUTHZ_POLL=%q: want a positive duration", v)
		}
		every = d
	}
	go m.poll(ctx, every)
	return nil
}

// loadCompiled reads deploy/policies/ladon.json: the permission catalogue and a policy per role.
func (m *Module) loadCompiled(path string) error {
	doc, err := policydoc.Read(path)
	if err != nil {
		return err
	}
	m.permissions = map[string]bool{}
	for _, p := range doc.Permissions {
		m.permissions[p] = true
	}
	m.compiled = m.compiled[:0]
	for _, p := range doc.Policies {
		lp, err := ladonPolicy(p)
		if err != nil {
			return fmt.Errorf("compiled policies %s: %w", path, err)
		}
		m.compiled = append(m.compiled, lp)
	}
	return nil
}

// ladonPolicy turns a compiled policy into ladon's type, whose conditions decode only from
// ladon's JSON form.
func ladonPolicy(p policydoc.Policy) (*ladon.DefaultPolicy, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	var lp ladon.DefaultPolicy
	if err := json.Unmarshal(b, &lp); err != nil {
		return nil, fmt.Errorf("policy %s: %w", p.ID, err)
	}
	return &lp, nil
}

// reload builds a new engine from the compiled policies and the stored runtime ones.
func (m *Module) reload(ctx context.Context) error {
	tx, err := m.k.DB().Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	// One snapshot: the revision and the rows agree.
	if _, err := tx.Exec(ctx, `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ`); err != nil {
		return err
	}
	var rev int64
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(revision), 0) FROM policy_history`).Scan(&rev); err != nil {
		return fmt.Errorf("policy revision: %w", err)
	}
	if cur := m.cur.Load(); cur != nil && cur.revision == rev {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT document FROM policies ORDER BY id`)
	if err != nil {
		return fmt.Errorf("runtime policies: %w", err)
	}
	all := append([]ladon.Policy(nil), m.compiled...)
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			rows.Close()
			return err
		}
		p := &ladon.DefaultPolicy{}
		if err := json.Unmarshal(b, p); err != nil {
			rows.Close()
			return fmt.Errorf("stored policy: %w", err)
		}
		all = append(all, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	e, err := engine.New(all)
	if err != nil {
		return err
	}
	old := m.cur.Swap(&state{engine: e, revision: rev})
	if old == nil || old.revision != rev {
		m.k.Log().Info("policies loaded", "revision", rev, "policies", e.Len(), "runtime", e.Len()-len(m.compiled))
	}
	return nil
}

func (m *Module) poll(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := m.reload(ctx); err != nil && ctx.Err() == nil {
				// Keep deciding with the last consistent view; decisions never see a half load.
				m.k.Log().Warn("reloading policies failed; keeping the current ones", "err", err)
			}
		}
	}
}

// policyChanged is the broadcast event: reload now if it is newer than what we have.
func (m *Module) policyChanged(ctx context.Context, e kernel.Event) error {
	var c client.PolicyChange
	if err := e.Decode(&c); err != nil {
		return fmt.Errorf("%w: %v", kernel.ErrDrop, err)
	}
	if cur := m.cur.Load(); cur != nil && cur.revision >= c.Revision {
		return nil
	}
	return m.reload(ctx)
}
