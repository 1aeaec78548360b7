-- +goose Up
-- Subjects (users) whose deletion this module has processed: the kernel refuses their tokens
-- and their writes from then on (kernel.SubscribeDeletions). Kept for good: an id never
-- comes back, and the row is what closes the door.
CREATE TABLE goplt_deleted_subjects (
    subject    text PRIMARY KEY,
    deleted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX goplt_deleted_subjects_at ON goplt_deleted_subjects (deleted_at);

-- +goose Down
DROP TABLE goplt_deleted_subjects;
