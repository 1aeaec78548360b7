-- +goose Up
CREATE TABLE plans (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    price_cents int NOT NULL
);
INSERT INTO plans (id, name, price_cents) VALUES ('free', 'Free', 0), ('pro', 'Pro', 900);

-- One subscription per user; the primary key makes "give every new user a free plan"
-- idempotent under redelivery.
CREATE TABLE subscriptions (
    user_id    uuid PRIMARY KEY,
    plan_id    text NOT NULL REFERENCES plans (id),
    status     text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'cancelled')),
    updated_at timestamptz NOT NULL DEFAULT now()
);

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
DROP TABLE subscriptions;
DROP TABLE plans;
