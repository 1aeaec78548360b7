-- +goose Up
-- Notes live in the Dapr state store now (docs/kernel.md#state); the schema keeps only the
-- kernel's record of deleted users. Notes kept here before are not carried over.
DROP TABLE received_events;
DROP TABLE notes;

-- +goose Down
CREATE TABLE notes (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    text       text NOT NULL CHECK (length(text) BETWEEN 1 AND 10000),
    created_at timestamptz NOT NULL DEFAULT now(),
    owner_id   uuid
);
CREATE INDEX notes_owner ON notes (owner_id) WHERE owner_id IS NOT NULL;
CREATE TABLE received_events (
    event_id    text PRIMARY KEY,
    note_id     uuid NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
