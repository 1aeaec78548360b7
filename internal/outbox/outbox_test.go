package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/goplt/goplt/internal/outbox"
	"github.com/goplt/goplt/internal/stacktest"
)

var stack *stacktest.Stack

func TestMain(m *testing.M) {
	stacktest.Main(m, func(ctx context.Context, s *stacktest.Stack) (func(), error) {
		stack = s
		return nil, nil
	})
}

const table = `CREATE SCHEMA IF NOT EXISTS outboxtest;
CREATE TABLE IF NOT EXISTS outboxtest.outbox (
    seq bigserial PRIMARY KEY, event_id text NOT NULL UNIQUE, topic text NOT NULL, payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(), attempts int NOT NULL DEFAULT 0, last_error text, partition_key text);`

// keyed is a payload with a partition key.
type keyed struct{ N int }

func (k keyed) PartitionKey() string { return fmt.Sprint("k", k.N) }

// flakyBroker fails while down, and records what it accepted.
type flakyBroker struct {
	mu   sync.Mutex
	down bool
	got  []string
	keys []string
}

func (b *flakyBroker) publish(_ context.Context, topic, id string, payload any) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		return errors.New("sidecar unreachable")
	}
	b.got = append(b.got, id)
	if k, ok := payload.(outbox.Keyed); ok {
		b.keys = append(b.keys, k.PartitionKey())
	}
	return nil
}

// Events committed while the broker is down are published, in order, once it is back; events
// of a rolled-back transaction never are.
func TestEventsSurviveAnOutage(t *testing.T) {
	if stack == nil {
		t.Skip("integration test: needs PostgreSQL (run without -short)")
	}
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(stack.Endpoints().PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = "outboxtest"
	db, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(ctx, table); err != nil {
		t.Fatal(err)
	}
	broker := &flakyBroker{down: true}
	relay := outbox.NewRelay(db, broker.publish, slog.New(slog.NewTextHandler(io.Discard, nil)), 20*time.Millisecond)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { relay.Run(rctx); close(done) }()
	defer func() { cancel(); <-done }()

	var want []string
	for i := range 5 {
		err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			var payload any = map[string]int{"n": i}
			if i == 3 {
				payload = keyed{N: i}
			}
			id, err := outbox.Add(ctx, tx, "test.thing.happened", payload)
			want = append(want, id)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		relay.Kick()
	}
	rolledBack := errors.New("rollback")
	_ = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := outbox.Add(ctx, tx, "test.thing.happened", "never"); err != nil {
			t.Fatal(err)
		}
		return rolledBack
	})
	time.Sleep(200 * time.Millisecond)
	var attempts int
	if err := db.QueryRow(ctx, `SELECT coalesce(max(attempts), 0) FROM outbox`).Scan(&attempts); err != nil || attempts == 0 {
		t.Fatalf("relay did not try while the broker was down (attempts %d, %v)", attempts, err)
	}

	broker.mu.Lock()
	broker.down = false
	broker.mu.Unlock()
	deadline := time.Now().Add(40 * time.Second) // the relay backs off up to 30s
	for {
		broker.mu.Lock()
		n := len(broker.got)
		broker.mu.Unlock()
		if n >= len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("published %d of %d events after the outage", n, len(want))
		}
		time.Sleep(20 * time.Millisecond)
	}
	broker.mu.Lock()
	defer broker.mu.Unlock()
	if len(broker.keys) != 1 || broker.keys[0] != "k3" {
		t.Errorf("partition keys handed to the publisher: %v, want [k3]", broker.keys)
	}
	if len(broker.got) != len(want) {
		t.Fatalf("published %v, want exactly %v", broker.got, want)
	}
	for i := range want {
		if broker.got[i] != want[i] {
			t.Fatalf("published out of order: %v, want %v", broker.got, want)
		}
	}
	var left int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d rows left in the outbox (%v)", left, err)
	}
}
