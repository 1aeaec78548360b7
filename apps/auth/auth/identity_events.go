package auth

import (
	"context"
	"errors"
	"math"

	"github.com/jackc/pgx/v5"

	"github.com/goplt/goplt/apps/auth/client"
	identity "github.com/goplt/goplt/apps/identity/client"
	"github.com/goplt/goplt/internal/kernel"
)

// Reasons recorded on sessions ended because of the user's state.
const (
	reasonDisabled = "account_disabled"
	reasonDeleted  = "account_deleted"
)

// userEnded handles identity.user.disabled and .deleted: every session of the user ends at
// once (their refresh tokens stop, and GET /revocations names them for strict verifiers), and
// the user's tokens below the event's principal version become stale, which also catches a
// login that raced the change (it read the user before it, so its token carries an older
// version).
func (m *Module) userEnded(reason string) kernel.EventHandler {
	return func(ctx context.Context, e kernel.Event) error {
		ev, err := identity.DecodeUserEvent(e)
		if err != nil {
			return err
		}
		version := ev.PrincipalVersion
		if version == 0 && reason == reasonDeleted {
			version = math.MaxInt64 // from a publisher without versions: no token of a deleted user is good
		}
		return m.k.Transact(ctx, func(tx pgx.Tx) error {
			if err := raiseMinVersion(ctx, tx, ev.UserID, version); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, `UPDATE sessions SET revoked_at = now(), revoke_reason = $2
				WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now() RETURNING id::text`, ev.UserID, reason)
			if err != nil {
				return err
			}
			sids, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			for _, sid := range sids {
				sev := m.event("unknown")
				sev.UserID, sev.SessionID, sev.Reason = ev.UserID, sid, reason
				if _, err := m.k.Emit(ctx, tx, client.TopicSessionRevoked, sev); err != nil {
					return err
				}
			}
			if len(sids) > 0 {
				m.k.Log().InfoContext(ctx, "sessions revoked", "user_id", ev.UserID, "reason", reason, "sessions", len(sids))
			}
			return nil
		})
	}
}

// rolesChanged handles identity.user.roles.changed: the user's tokens with the old roles become
// stale (strict verifiers answer token_stale); the sessions stay, so a refresh gives a token
// with the new roles.
func (m *Module) rolesChanged(ctx context.Context, e kernel.Event) error {
	var ev identity.RolesChangedEvent
	if err := e.Decode(&ev); err != nil || ev.UserID == "" {
		return errors.Join(kernel.ErrDrop, err)
	}
	if ev.PrincipalVersion == 0 {
		return nil // a publisher without versions: nothing to compare tokens with
	}
	return m.k.Transact(ctx, func(tx pgx.Tx) error { return raiseMinVersion(ctx, tx, ev.UserID, ev.PrincipalVersion) })
}

// raiseMinVersion records that the user's tokens below version are stale. Redelivered and
// reordered events are harmless: the minimum only grows.
func raiseMinVersion(ctx context.Context, tx pgx.Tx, userID string, version int64) error {
	if version <= 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO subject_versions (user_id, min_version) VALUES ($1, $2)
		ON CONFLICT (user_id) DO UPDATE SET min_version = excluded.min_version, changed_at = now()
		WHERE subject_versions.min_version < excluded.min_version`, userID, version)
	return err
}
