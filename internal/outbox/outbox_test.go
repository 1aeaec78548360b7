package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/goplt/goplt/internal/outbox"
	"github.com/goplt/goplt/internal/stacktest"
	"github.com/goplt/goplt/internal/telemetry"
)

var stack *stacktest.Stack

func TestMain(m *testing.M) {
	stacktest.Main(m, func(ctx context.Context, s *stacktest.Stack) (func(), error) {
		stack = s
		return nil, nil
	})
}

// createTable applies the package's own migrations (their Up parts) to a fresh schema, so
// the test's table is the one apps get.
func createTable(ctx context.Context, t *testing.T, db *pgxpool.Pool) {
	t.Helper()
	if _, err := db.Exec(ctx, `DROP SCHEMA IF EXISTS outboxtest CASCADE; CREATE SCHEMA outboxtest`); err != nil {
		t.Fatal(err)
	}
	files, err := fs.Glob(outbox.Migrations, "migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migrations: %v %v", files, err)
	}
	for _, f := range files { // fs.Glob sorts: 00001, 00002, ...
		b, _ := fs.ReadFile(outbox.Migrations, f)
		up, _, _ := strings.Cut(string(b), "-- +goose Down")
		if _, err := db.Exec(ctx, up); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
}

// traceOf is the W3C traceparent of event i's request.
func traceOf(i int) string { return fmt.Sprintf("00-%032x-%016x-01", i+1, i+1) }

// keyed is a payload with a partition key.
type keyed struct{ N int }

func (k keyed) PartitionKey() string { return fmt.Sprint("k", k.N) }

// flakyBroker fails while down, and records what it accepted.
type flakyBroker struct {
	mu     sync.Mutex
	down   bool
	got    []string
	keys   []string
	traces []string // the trace each publish ran in
}

func (b *flakyBroker) publish(ctx context.Context, topic, id string, payload any) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		return errors.New("sidecar unreachable")
	}
	b.got = append(b.got, id)
	b.traces = append(b.traces, telemetry.TraceParent(ctx))
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
	createTable(ctx, t, db)
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
			// Each event is written in a request's trace; the relay publishes it in that trace.
			id, err := outbox.Add(telemetry.WithTraceParent(ctx, traceOf(i)), tx, "test.thing.happened", payload)
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
	for i, tp := range broker.traces {
		if tp == "" || tp[3:35] != traceOf(i)[3:35] {
			t.Errorf("event %d published in trace %q, want the trace it was written in (%s)", i, tp, traceOf(i))
		}
	}
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
