// Package outbox makes event publication transactional: a handler adds the event to the
// outbox table in the same database transaction as the change it announces, and a relay
// publishes outbox rows through the sidecar in order, deleting each once the sidecar has
// accepted it. So an event is never lost when the commit succeeded, even if the sidecar or
// the broker is down at that moment: the relay retries until they are back.
//
// Delivery is at least once (a crash between publish and delete republishes a row with the
// same event id, which subscribers deduplicate).
//
// Modules do not use the relay directly: kernel.UseOutbox creates the table (Migrations, in the
// module's schema) and runs the relay; kernel.Transact runs a change and kicks it.
package outbox

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/goplt/goplt/internal/failpoint"
	"github.com/goplt/goplt/internal/telemetry"
)

// Migrations create the outbox table (goose files, applied by the kernel with a version table
// of their own).
//
//go:embed migrations/*.sql
var Migrations embed.FS

// Keyed is a payload with a partition key: events with the same key (say, the user they are
// about) land on the same partition, so a topic with several partitions keeps their order.
type Keyed interface {
	PartitionKey() string
}

// keyedPayload is a stored payload with its key, as the relay hands it to the publisher.
type keyedPayload struct {
	json.RawMessage
	key string
}

func (k keyedPayload) PartitionKey() string { return k.key }

// Add stores an event in the outbox within tx and returns its id. Publication happens after
// the commit, in ctx's trace; call Relay.Kick to make it prompt. A Keyed payload keeps its key.
func Add(ctx context.Context, tx pgx.Tx, topic string, payload any) (string, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return "", fmt.Errorf("outbox %s: encode: %w", topic, err)
	}
	var key *string
	if k, ok := payload.(Keyed); ok && k.PartitionKey() != "" {
		s := k.PartitionKey()
		key = &s
	}
	var tp *string
	if s := telemetry.TraceParent(ctx); s != "" {
		tp = &s
	}
	id := NewEventID()
	if _, err := tx.Exec(ctx, `INSERT INTO outbox (event_id, topic, payload, partition_key, traceparent) VALUES ($1, $2, $3, $4, $5)`, id, topic, b, key, tp); err != nil {
		return "", fmt.Errorf("outbox %s: %w", topic, err)
	}
	return id, nil
}

// NewEventID returns a random event id.
func NewEventID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// PublishFunc publishes one event (kernel.Kernel.Publish fits). A payload the relay passes is
// JSON, and Keyed when its row has a partition key.
type PublishFunc func(ctx context.Context, topic, eventID string, payload any) error

// Relay publishes outbox rows.
type Relay struct {
	db       *pgxpool.Pool
	publish  PublishFunc
	log      *slog.Logger
	interval time.Duration
	kick     chan struct{}
}

// NewRelay returns a relay over the module's pool. interval is the polling period when not
// kicked (rows written by other replicas, or left by a failed attempt).
func NewRelay(db *pgxpool.Pool, publish PublishFunc, log *slog.Logger, interval time.Duration) *Relay {
	return &Relay{db: db, publish: publish, log: log, interval: interval, kick: make(chan struct{}, 1)}
}

// Kick asks the relay to run now.
func (r *Relay) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run relays until ctx ends.
func (r *Relay) Run(ctx context.Context) {
	backoff := r.interval
	for {
		n, err := r.Flush(ctx)
		wait := r.interval
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.WarnContext(ctx, "outbox relay: publish failed, will retry", "err", err, "retry_in", backoff.String())
			wait = backoff
			backoff = min(backoff*2, 30*time.Second)
		} else {
			backoff = r.interval
			if n > 0 {
				continue // there may be more
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		case <-time.After(wait):
		}
	}
}

// batch bounds the rows one Flush publishes.
const batch = 100

// Flush publishes up to one batch of rows in order, stopping at the first failure so order is
// kept. Rows are locked (SKIP LOCKED), so replicas relay disjoint batches.
func (r *Relay) Flush(ctx context.Context) (int, error) {
	tx, err := r.db.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	rows, err := tx.Query(ctx, `SELECT seq, event_id, topic, payload, coalesce(partition_key, ''), coalesce(traceparent, '') FROM outbox ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED`, batch)
	if err != nil {
		return 0, err
	}
	type row struct {
		seq                      int64
		id, topic, key, traceCtx string
		payload                  json.RawMessage
	}
	var todo []row
	for rows.Next() {
		var x row
		if err := rows.Scan(&x.seq, &x.id, &x.topic, &x.payload, &x.key, &x.traceCtx); err != nil {
			rows.Close()
			return 0, err
		}
		todo = append(todo, x)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	done := 0
	var pubErr error
	for _, x := range todo {
		failpoint.Hit("outbox-before-publish") // committed by the handler, not yet published
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var payload any = x.payload
		if x.key != "" {
			payload = keyedPayload{x.payload, x.key}
		}
		pubErr = r.publish(telemetry.WithTraceParent(pctx, x.traceCtx), x.topic, x.id, payload)
		cancel()
		if pubErr == nil {
			failpoint.Hit("outbox-after-publish") // published, not yet deleted
		}
		if pubErr != nil {
			_, _ = tx.Exec(ctx, `UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE seq = $1`, x.seq, pubErr.Error())
			break
		}
		if _, err := tx.Exec(ctx, `DELETE FROM outbox WHERE seq = $1`, x.seq); err != nil {
			return done, err
		}
		done++
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	return done, pubErr
}
