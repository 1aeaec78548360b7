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


-- +goose Down
DROP TABLE subscriptions;
DROP TABLE plans;
