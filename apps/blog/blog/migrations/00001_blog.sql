-- +goose Up
CREATE TABLE posts (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    seq          bigserial NOT NULL UNIQUE,
    author_id    uuid,          -- NULL once the author's account is deleted
    author_name  text NOT NULL DEFAULT '',
    title        text NOT NULL,
    body         text NOT NULL,
    status       text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX posts_author ON posts (author_id);


-- +goose Down
DROP TABLE posts;
