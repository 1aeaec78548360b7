-- +goose Up
-- Events with the same key go to the same partition, so their order holds when a topic has
-- several partitions (one per replica of its subscribers).
ALTER TABLE outbox ADD COLUMN partition_key text;

-- +goose Down
ALTER TABLE outbox DROP COLUMN partition_key;
