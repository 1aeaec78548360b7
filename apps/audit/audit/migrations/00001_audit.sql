-- +goose Up
-- The append-only, hash-chained audit log. Positions have no gaps (assigned under a lock, not
-- by a sequence), so a missing position is a deleted row.
CREATE TABLE log (
    pos         bigint PRIMARY KEY,
    event_id    text NOT NULL UNIQUE,
    topic       text NOT NULL,
    source      text NOT NULL,
    actor       text NOT NULL,
    action      text NOT NULL,
    resource    text NOT NULL,
    outcome     text NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    payload     text NOT NULL, -- canonical JSON, exactly as hashed
    prev_hash   bytea NOT NULL,
    hash        bytea NOT NULL
);
CREATE INDEX log_actor ON log (actor, pos);
CREATE INDEX log_action ON log (action, pos);
CREATE INDEX log_resource ON log (resource, pos);
CREATE INDEX log_outcome ON log (outcome, pos);
CREATE INDEX log_occurred ON log (occurred_at);

-- The application never changes or removes a row; this makes an accident impossible (a
-- determined superuser can disable it, which is what the hash chain is for).
-- +goose StatementBegin
CREATE FUNCTION log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER log_append_only BEFORE UPDATE OR DELETE ON log FOR EACH ROW EXECUTE FUNCTION log_append_only();

CREATE TABLE checkpoints (
    pos       bigint PRIMARY KEY,
    hash      bytea NOT NULL,
    signed_at timestamptz NOT NULL,
    kid       text NOT NULL,
    signature bytea NOT NULL
);

-- Events that could not be processed, from the dead-letter topic.
CREATE TABLE dead_letters (
    seq         bigserial PRIMARY KEY,
    event_id    text NOT NULL UNIQUE,
    topic       text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    event       text NOT NULL
);

-- +goose Down
DROP TABLE dead_letters;
DROP TABLE checkpoints;
DROP TRIGGER log_append_only ON log;
DROP FUNCTION log_append_only();
DROP TABLE log;
