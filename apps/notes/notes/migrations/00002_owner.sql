-- +goose Up
-- The user who wrote the note (NULL for notes made by services without a user); a deleted
-- user's notes are deleted with them.
ALTER TABLE notes ADD COLUMN owner_id uuid;
CREATE INDEX notes_owner ON notes (owner_id) WHERE owner_id IS NOT NULL;

-- +goose Down
ALTER TABLE notes DROP COLUMN owner_id;
