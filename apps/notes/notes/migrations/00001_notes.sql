-- +goose Up
CREATE TABLE notes (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    text       text NOT NULL CHECK (length(text) BETWEEN 1 AND 10000),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Events that came back through the broker; the event id makes redelivery harmless.
CREATE TABLE received_events (
    event_id    text PRIMARY KEY,
    note_id     uuid NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE received_events;
DROP TABLE notes;
