-- +goose Up
-- Runtime policies (the compiled ones come from deploy/policies/ladon.json). Every write takes
-- a new revision from one sequence, so replicas know whether they are current.
CREATE SEQUENCE policy_revision;

CREATE TABLE policies (
    id         text PRIMARY KEY,
    revision   bigint NOT NULL,
    document   jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL DEFAULT ''
);

-- Every version of every policy, deletions included: what was in force when.
CREATE TABLE policy_history (
    revision   bigint PRIMARY KEY,
    id         text NOT NULL,
    op         text NOT NULL CHECK (op IN ('put', 'delete')),
    document   jsonb,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL DEFAULT ''
);


-- +goose Down
DROP TABLE policy_history;
DROP TABLE policies;
DROP SEQUENCE policy_revision;
