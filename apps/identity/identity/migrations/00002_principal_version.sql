-- +goose Up
-- Bumped whenever what an access token says about the user changes (status, roles) and
-- carried in the tokens auth issues: auth's revocation list names the lowest version still
-- good, so strict verifiers refuse older tokens at once.
ALTER TABLE users ADD COLUMN principal_version bigint NOT NULL DEFAULT 1;

-- +goose Down
ALTER TABLE users DROP COLUMN principal_version;
