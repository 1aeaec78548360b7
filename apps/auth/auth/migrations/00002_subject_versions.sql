-- +goose Up
-- The lowest principal version (identity's count of a user's status and role changes) whose
-- access tokens are still good, per user whose status or roles changed; GET /revocations lists
-- the rows changed within an access token's lifetime.
CREATE TABLE subject_versions (
    user_id     uuid PRIMARY KEY,
    min_version bigint NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subject_versions_changed ON subject_versions (changed_at);

-- +goose Down
DROP TABLE subject_versions;
