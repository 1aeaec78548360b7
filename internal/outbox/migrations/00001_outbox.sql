-- +goose Up
-- The transactional outbox (package outbox), created by the kernel in every module schema
-- that uses it (kernel.UseOutbox).
CREATE TABLE outbox (
    seq        bigserial PRIMARY KEY,
    event_id   text NOT NULL UNIQUE,
    topic      text NOT NULL,
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    attempts   int NOT NULL DEFAULT 0,
    last_error text
);

-- +goose Down
DROP TABLE outbox;
