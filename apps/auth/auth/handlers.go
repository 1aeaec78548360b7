package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/goplt/goplt/apps/auth/client"
	identity "github.com/goplt/goplt/apps/identity/client"
	"github.com/goplt/goplt/internal/emailaddr"
	"github.com/goplt/goplt/internal/invoke"
	"github.com/goplt/goplt/internal/kernel"
	"github.com/goplt/goplt/internal/password"
	"github.com/goplt/goplt/internal/token"
)

// maxBody bounds auth's request bodies (a password beyond password.MaxBytes is refused
// without being hashed anyway).
const maxBody = 8 << 10

// refreshTokenBytes is the entropy of a refresh token (256 bits).
const refreshTokenBytes = 32

// clientIP is the caller's address as the gateway reports it (it overwrites any
// client-supplied X-Forwarded-For), or "unknown" for direct service calls.
func clientIP(r *http.Request) string {
	first, _, _ := strings.Cut(r.Header.Get("X-Forwarded-For"), ",")
	if ip := net.ParseIP(strings.TrimSpace(first)); ip != nil {
		return ip.String()
	}
	return "unknown"
}

func (m *Module) event(ip string) client.SecurityEvent {
	return client.SecurityEvent{Version: 1, IP: ip, At: time.Now().UTC()}
}

func (m *Module) login(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if !kernel.DecodeJSON(w, r, maxBody, &in) {
		return
	}
	if in.Email == "" || in.Password == "" {
		kernel.WriteError(w, r, http.StatusBadRequest, "missing_credentials", "email and password are required")
		return
	}
	if len(in.Password) > password.MaxBytes {
		kernel.WriteError(w, r, http.StatusBadRequest, "invalid_password", password.ErrTooLong.Error())
		return
	}
	ctx := r.Context()
	ip := clientIP(r)
	email, err := emailaddr.Normalize(in.Email)
	if err != nil {
		email = strings.ToLower(strings.TrimSpace(in.Email)) // still throttled, still a generic failure
		if len(email) > 320 {
			email = email[:320]
		}
	}
	keys := keysFor(email, ip)
	wait, known, err := m.blockedFor(ctx, keys, email, ip)
	if err != nil {
		m.k.Fail(w, r, "login", err)
		return
	}
	if wait > 0 {
		ev := m.event(ip)
		ev.Email, ev.Reason = email, "throttled"
		_ = m.k.Transact(ctx, func(tx pgx.Tx) error { _, err := m.k.Emit(ctx, tx, client.TopicLoginThrottled, ev); return err })
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		kernel.WriteError(w, r, http.StatusTooManyRequests, "too_many_attempts", "too many failed logins; try again later")
		return
	}
	p, err := m.identity.VerifyCredentials(ctx, in.Email, in.Password)
	var ie *invoke.Error
	switch {
	case errors.As(err, &ie) && (ie.Code == "invalid_credentials" || ie.Code == "account_disabled"):
		ev := m.event(ip)
		ev.Email, ev.Reason = email, ie.Code
		if err := m.k.Transact(ctx, func(tx pgx.Tx) error {
			if ie.Code == "invalid_credentials" {
				if err := recordFailure(ctx, tx, keys, known); err != nil {
					return err
				}
			}
			_, err := m.k.Emit(ctx, tx, client.TopicLoginFailed, ev)
			return err
		}); err != nil {
			m.k.Fail(w, r, "login", err)
			return
		}
		if ie.Code == "account_disabled" {
			kernel.WriteError(w, r, http.StatusForbidden, "account_disabled", "this account is disabled")
			return
		}
		kernel.WriteError(w, r, http.StatusUnauthorized, "invalid_credentials", "wrong email or password")
		return
	case err != nil:
		m.k.Log().ErrorContext(ctx, "identity unavailable for login", "err", err)
		kernel.WriteError(w, r, http.StatusServiceUnavailable, "identity_unavailable", "cannot check credentials right now; try again")
		return
	}
	var sid, refresh string
	err = m.k.Transact(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM login_throttle WHERE key = $1`, keys.pair); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO known_clients (email, ip, last_seen) VALUES ($1, $2, now())
			ON CONFLICT (email, ip) DO UPDATE SET last_seen = now()`, p.Email, ip); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `INSERT INTO sessions (user_id, expires_at) VALUES ($1, now() + make_interval(secs => $2)) RETURNING id::text`,
			p.UserID, m.set.SessionTTL.Seconds()).Scan(&sid); err != nil {
			return err
		}
		var err error
		if refresh, err = m.newRefreshToken(ctx, tx, sid); err != nil {
			return err
		}
		ev := m.event(ip)
		ev.UserID, ev.Email, ev.SessionID = p.UserID, p.Email, sid
		_, err = m.k.Emit(ctx, tx, client.TopicLoginSucceeded, ev)
		return err
	})
	if err != nil {
		m.k.Fail(w, r, "login", err)
		return
	}
	m.answerTokens(w, r, p, sid, refresh)
}

// newRefreshToken stores the hash of a fresh refresh token of session sid, expiring after the
// idle lifetime but never after the session itself.
func (m *Module) newRefreshToken(ctx context.Context, tx pgx.Tx, sid string) (string, error) {
	b := make([]byte, refreshTokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	raw := base64.RawURLEncoding.EncodeToString(b)
	h := sha256.Sum256([]byte(raw))
	_, err := tx.Exec(ctx, `INSERT INTO refresh_tokens (hash, session_id, expires_at)
		SELECT $1, $2, LEAST(now() + make_interval(secs => $3), s.expires_at) FROM sessions s WHERE s.id = $2`,
		h[:], sid, m.set.RefreshTTL.Seconds())
	return raw, err
}

func (m *Module) answerTokens(w http.ResponseWriter, r *http.Request, p *identity.Principal, sid, refresh string) {
	ks := m.keys.Load()
	key, err := ks.Signing()
	if err != nil {
		m.k.Fail(w, r, "sign", err)
		return
	}
	raw, _, err := m.signer.Sign(key, token.Grant{Subject: p.UserID, SessionID: sid, Roles: p.Roles, Version: p.Version})
	if err != nil {
		m.k.Fail(w, r, "sign", err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	kernel.WriteJSON(w, http.StatusOK, client.Tokens{AccessToken: raw, TokenType: "Bearer",
		ExpiresIn: int(m.set.AccessTTL.Seconds()), RefreshToken: refresh, SessionID: sid})
}

// decodeRefresh reads {"refreshToken": ...} and returns its hash; on failure it has answered.
func decodeRefresh(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	var in struct {
		RefreshToken string `json:"refreshToken"`
	}
	if !kernel.DecodeJSON(w, r, maxBody, &in) {
		return nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(in.RefreshToken)
	if err != nil || len(b) != refreshTokenBytes {
		kernel.WriteError(w, r, http.StatusUnauthorized, "invalid_refresh_token", "the refresh token is not valid")
		return nil, false
	}
	h := sha256.Sum256([]byte(in.RefreshToken))
	return h[:], true
}

type refreshRow struct {
	sid, userID    string
	usedAt         *time.Time
	expires        time.Time
	sessionExpires time.Time
	sessionRevoked *time.Time
}

func (m *Module) refresh(w http.ResponseWriter, r *http.Request) {
	hash, ok := decodeRefresh(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	ip := clientIP(r)
	var row refreshRow
	err := m.k.DB().QueryRow(ctx, `SELECT s.id::text, s.user_id::text, rt.used_at, rt.expires_at, s.expires_at, s.revoked_at
		FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id WHERE rt.hash = $1`, hash).
		Scan(&row.sid, &row.userID, &row.usedAt, &row.expires, &row.sessionExpires, &row.sessionRevoked)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		kernel.WriteError(w, r, http.StatusUnauthorized, "invalid_refresh_token", "the refresh token is not valid")
		return
	case err != nil:
		m.k.Fail(w, r, "refresh", err)
		return
	case row.usedAt != nil:
		m.reuseDetected(w, r, row, ip)
		return
	case row.sessionRevoked != nil:
		kernel.WriteError(w, r, http.StatusUnauthorized, "session_revoked", "the session was ended; log in again")
		return
	case time.Now().After(row.expires) || time.Now().After(row.sessionExpires):
		kernel.WriteError(w, r, http.StatusUnauthorized, "session_expired", "the session expired; log in again")
		return
	}
	// The user's current state: a disabled or deleted user's session ends here, and role
	// changes show in the new access token.
	p, err := m.identity.Principal(ctx, row.userID)
	var ie *invoke.Error
	if errors.As(err, &ie) && ie.Code == "not_found" || err == nil && p.Status != identity.StatusActive {
		_ = m.revoke(ctx, row.sid, "account_disabled", row.userID, ip, client.TopicSessionRevoked)
		kernel.WriteError(w, r, http.StatusUnauthorized, "account_disabled", "the account is disabled or gone")
		return
	}
	if err != nil {
		m.k.Log().ErrorContext(ctx, "identity unavailable for refresh", "err", err)
		kernel.WriteError(w, r, http.StatusServiceUnavailable, "identity_unavailable", "cannot refresh right now; try again")
		return
	}
	var refresh string
	reused := false
	err = m.k.Transact(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE refresh_tokens SET used_at = now() WHERE hash = $1 AND used_at IS NULL`, hash)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			reused = true // a concurrent refresh with the same token won the race
			return nil
		}
		if refresh, err = m.newRefreshToken(ctx, tx, row.sid); err != nil {
			return err
		}
		ev := m.event(ip)
		ev.UserID, ev.SessionID = row.userID, row.sid
		_, err = m.k.Emit(ctx, tx, client.TopicTokenRefreshed, ev)
		return err
	})
	if err != nil {
		m.k.Fail(w, r, "refresh", err)
		return
	}
	if reused {
		m.reuseDetected(w, r, row, ip)
		return
	}
	m.answerTokens(w, r, p, row.sid, refresh)
}

// reuseDetected handles a refresh token presented a second time: one of the two holders is
// not the user, so the whole family (session) is revoked.
func (m *Module) reuseDetected(w http.ResponseWriter, r *http.Request, row refreshRow, ip string) {
	if err := m.revoke(r.Context(), row.sid, "refresh_token_reused", row.userID, ip, client.TopicRefreshReused); err != nil {
		m.k.Fail(w, r, "refresh", err)
		return
	}
	kernel.WriteError(w, r, http.StatusUnauthorized, "refresh_token_reused", "this refresh token was already used; the session has been ended")
}

// revoke ends session sid (if not already ended) and announces it on topic.
func (m *Module) revoke(ctx context.Context, sid, reason, userID, ip, topic string) error {
	return m.k.Transact(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE sessions SET revoked_at = now(), revoke_reason = $2 WHERE id = $1 AND revoked_at IS NULL`, sid, reason)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 && topic == client.TopicSessionRevoked {
			return nil // already ended: nothing new to announce
		}
		ev := m.event(ip)
		ev.UserID, ev.SessionID, ev.Reason = userID, sid, reason
		_, err = m.k.Emit(ctx, tx, topic, ev)
		return err
	})
}

// logout ends the session of a refresh token. It answers 204 whatever the token, so it is no
// oracle for valid tokens.
func (m *Module) logout(w http.ResponseWriter, r *http.Request) {
	hash, ok := decodeRefresh(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	var sid, userID string
	err := m.k.DB().QueryRow(ctx, `SELECT s.id::text, s.user_id::text FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id
		WHERE rt.hash = $1`, hash).Scan(&sid, &userID)
	if err == nil {
		err = m.revoke(ctx, sid, "logout", userID, clientIP(r), client.TopicSessionRevoked)
	}
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		m.k.Fail(w, r, "logout", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (m *Module) jwks(w http.ResponseWriter, r *http.Request) {
	ks := m.keys.Load()
	w.Header().Set("Cache-Control", "public, max-age=60")
	kernel.WriteJSON(w, http.StatusOK, ks.JWKS())
}

// revocations lists sessions revoked, and users whose older tokens went stale, within the
// access-token lifetime (plus a minute of slack): older changes concern only expired tokens.
func (m *Module) revocations(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	window := (m.set.AccessTTL + time.Minute).Seconds()
	list := client.Revocations{Sessions: []string{}, Subjects: []token.SubjectCutoff{}}
	rows, err := m.k.DB().Query(ctx, `SELECT id::text FROM sessions WHERE revoked_at > now() - make_interval(secs => $1) ORDER BY revoked_at`, window)
	if err == nil {
		list.Sessions, err = pgx.AppendRows(list.Sessions, rows, pgx.RowTo[string])
	}
	if err == nil {
		rows, err = m.k.DB().Query(ctx, `SELECT user_id::text, min_version FROM subject_versions
			WHERE changed_at > now() - make_interval(secs => $1) ORDER BY changed_at`, window)
	}
	if err == nil {
		list.Subjects, err = pgx.AppendRows(list.Subjects, rows, pgx.RowToStructByPos[token.SubjectCutoff])
	}
	if err != nil {
		m.k.Fail(w, r, "revocations", err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	kernel.WriteJSON(w, http.StatusOK, list)
}
