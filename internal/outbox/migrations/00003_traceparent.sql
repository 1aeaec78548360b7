-- +goose Up
-- The trace the event was written in (W3C traceparent): the relay publishes in it, so one
-- request is one trace from the handler through the broker to every subscriber.
ALTER TABLE outbox ADD COLUMN traceparent text;

-- +goose Down
ALTER TABLE outbox DROP COLUMN traceparent;
