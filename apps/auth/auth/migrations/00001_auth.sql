-- +goose Up
-- A session is a refresh-token family: every refresh token of one login, in a chain.
CREATE TABLE sessions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL, -- absolute lifetime: no refresh goes past it
    revoked_at    timestamptz,
    revoke_reason text
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_revoked ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

-- Refresh tokens are stored as SHA-256 hashes: the database never holds a usable token.
CREATE TABLE refresh_tokens (
    hash       bytea PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Failed-login counters per IP, per account and per (account, IP).
CREATE TABLE login_throttle (
    key           text PRIMARY KEY,
    failures      int NOT NULL,
    last_failure  timestamptz NOT NULL,
    blocked_until timestamptz
);

-- Addresses an account has logged in from: exempt from the account-wide throttle, so an
-- attacker elsewhere cannot lock the owner out.
CREATE TABLE known_clients (
    email     text NOT NULL, -- normalized
    ip        text NOT NULL,
    last_seen timestamptz NOT NULL,
    PRIMARY KEY (email, ip)
);


-- +goose Down
DROP TABLE known_clients;
DROP TABLE login_throttle;
DROP TABLE refresh_tokens;
DROP TABLE sessions;
