// Package billing is an example module: plans and one subscription per user. It gives every
// new user the free plan when identity announces the user (idempotently: delivery is at least
// once), cancels it when the user is deleted, lets users change plans, and announces every
// change on billing.subscription.changed through the outbox. See apps/billing/README.md.
package billing

import (
	"context"
	"embed"
	"errors"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	auth "github.com/goplt/goplt/apps/auth/client"
	"github.com/goplt/goplt/apps/billing/contract"
	"github.com/goplt/goplt/apps/billing/permissions"
	identity "github.com/goplt/goplt/apps/identity/client"
	"github.com/goplt/goplt/internal/kernel"
)

//go:embed migrations/*.sql
var migrations embed.FS

// TopicSubscriptionChanged announces every change of a user's subscription.
const TopicSubscriptionChanged = "billing.subscription.changed"

// FreePlan is what every new user gets.
const FreePlan = "free"

// Plan is a plan.
type Plan struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	PriceCents int    `json:"priceCents"`
}

// Subscription is a user's subscription.
type Subscription struct {
	UserID    string    `json:"userId"`
	PlanID    string    `json:"planId"`
	Status    string    `json:"status"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// ChangedEvent is the payload (schema version 1) of billing.subscription.changed.
type ChangedEvent struct {
	Version  int       `json:"version"`
	UserID   string    `json:"userId"`
	PlanID   string    `json:"planId"`
	Status   string    `json:"status"`
	Previous string    `json:"previous"`
	At       time.Time `json:"at"`
}

// PartitionKey keeps one user's subscription changes in order (outbox.Keyed).
func (e ChangedEvent) PartitionKey() string { return e.UserID }

// Module is the billing module.
type Module struct {
	k *kernel.Kernel
}

// New returns the module.
func New() *Module { return &Module{} }

// Name implements kernel.Module.
func (m *Module) Name() string { return "billing" }

// Init implements kernel.Module.
func (m *Module) Init(k *kernel.Kernel) error {
	k.UseContracts(contract.Events())
	m.k = k
	k.Migrations(migrations, "migrations")
	k.UseOutbox()
	k.UseVerifier(auth.New(k.Invoker()).NewVerifier(auth.VerifierOptions{}).Cached(10000))
	k.DefinePermissions(permissions.Declared()...)
	k.UseRoutes(contract.Routes()) // who may call each route: the manifest says
	k.HandleFunc("GET /billing/plans", m.plans)
	k.HandleFunc("GET /billing/subscription", m.mine)
	k.HandleFunc("PUT /billing/subscription", m.change)
	k.Subscribe(identity.TopicUserCreated, "/events/user-created", m.userCreated)
	k.SubscribeDeletions(identity.UserDeletion, "/events/user-deleted", m.userDeleted)
	return nil
}

// Start implements kernel.Starter.
func (m *Module) Start(ctx context.Context) error {
	return nil
}

func (m *Module) plans(w http.ResponseWriter, r *http.Request) {
	rows, err := m.k.DB().Query(r.Context(), `SELECT id, name, price_cents FROM plans ORDER BY price_cents`)
	if err != nil {
		m.k.Fail(w, r, "plans", err)
		return
	}
	ps, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Plan])
	if err != nil {
		m.k.Fail(w, r, "plans", err)
		return
	}
	kernel.WriteJSON(w, http.StatusOK, map[string][]Plan{"plans": ps})
}

func (m *Module) mine(w http.ResponseWriter, r *http.Request) {
	c, err := m.k.Principal(r)
	if err != nil {
		kernel.WriteError(w, r, http.StatusUnauthorized, "unauthenticated", "a valid bearer token is required")
		return
	}
	var s Subscription
	err = m.k.DB().QueryRow(r.Context(), `SELECT user_id::text, plan_id, status, updated_at FROM subscriptions WHERE user_id = $1`, c.Subject).
		Scan(&s.UserID, &s.PlanID, &s.Status, &s.UpdatedAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		kernel.WriteError(w, r, http.StatusNotFound, "no_subscription", "no subscription yet (it is created when identity announces the user)")
	case err != nil:
		m.k.Fail(w, r, "subscription", err)
	default:
		kernel.WriteJSON(w, http.StatusOK, s)
	}
}

func (m *Module) change(w http.ResponseWriter, r *http.Request) {
	c, err := m.k.Principal(r)
	if err != nil {
		kernel.WriteError(w, r, http.StatusUnauthorized, "unauthenticated", "a valid bearer token is required")
		return
	}
	var in struct {
		PlanID string `json:"planId"`
	}
	if !kernel.DecodeJSON(w, r, 4<<10, &in) {
		return
	}
	ctx := r.Context()
	var s Subscription
	err = m.k.Transact(ctx, func(tx pgx.Tx) error {
		var prev string
		if err := tx.QueryRow(ctx, `SELECT plan_id FROM subscriptions WHERE user_id = $1 FOR UPDATE`, c.Subject).Scan(&prev); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM plans WHERE id = $1)`, in.PlanID).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return errUnknownPlan
		}
		if err := tx.QueryRow(ctx, `UPDATE subscriptions SET plan_id = $2, status = 'active', updated_at = now() WHERE user_id = $1
			RETURNING user_id::text, plan_id, status, updated_at`, c.Subject, in.PlanID).Scan(&s.UserID, &s.PlanID, &s.Status, &s.UpdatedAt); err != nil {
			return err
		}
		if prev == in.PlanID {
			return nil
		}
		_, err := m.k.Emit(ctx, tx, TopicSubscriptionChanged, ChangedEvent{Version: 1, UserID: s.UserID, PlanID: s.PlanID, Status: s.Status, Previous: prev, At: time.Now().UTC()})
		return err
	})
	switch {
	case errors.Is(err, errUnknownPlan):
		kernel.WriteError(w, r, http.StatusBadRequest, "unknown_plan", "no such plan")
	case errors.Is(err, pgx.ErrNoRows):
		kernel.WriteError(w, r, http.StatusNotFound, "no_subscription", "no subscription yet")
	case err != nil:
		m.k.Fail(w, r, "change plan", err)
	default:
		kernel.WriteJSON(w, http.StatusOK, s)
	}
}

var errUnknownPlan = errors.New("unknown plan")

// userCreated gives the new user the free plan. Redelivery finds the subscription and does
// nothing (no second event); a user deleted before the event arrived gets nothing.
func (m *Module) userCreated(ctx context.Context, e kernel.Event) error {
	ev, err := identity.DecodeUserEvent(e)
	if err != nil {
		return err
	}
	if m.k.SubjectDeleted(ev.UserID) {
		return nil
	}
	err = m.k.Transact(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO subscriptions (user_id, plan_id) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING`, ev.UserID, FreePlan)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		_, err = m.k.Emit(ctx, tx, TopicSubscriptionChanged, ChangedEvent{Version: 1, UserID: ev.UserID, PlanID: FreePlan, Status: "active", At: time.Now().UTC()})
		return err
	})
	return err
}

// userDeleted cancels the subscription of a deleted user.
func (m *Module) userDeleted(ctx context.Context, userID string) error {
	err := m.k.Transact(ctx, func(tx pgx.Tx) error {
		var prev string
		err := tx.QueryRow(ctx, `UPDATE subscriptions SET status = 'cancelled', updated_at = now() WHERE user_id = $1 AND status <> 'cancelled' RETURNING plan_id`, userID).Scan(&prev)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		_, err = m.k.Emit(ctx, tx, TopicSubscriptionChanged, ChangedEvent{Version: 1, UserID: userID, PlanID: prev, Status: "cancelled", Previous: prev, At: time.Now().UTC()})
		return err
	})
	return err
}
