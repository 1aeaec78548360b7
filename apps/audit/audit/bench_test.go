package audit_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/goplt/goplt/apps/audit/chain"
)

// produce puts n auth.login.failed CloudEvents with ids prefix-0..n-1 into the broker, paced
// at rate per second (0: as fast as the broker takes them).
func produce(b *testing.B, prefix string, n int, rate float64) {
	cl, err := stack.KafkaClient(kgo.ProducerLinger(time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	start := time.Now()
	for i := range n {
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
		}
		ce, err := stack.SignedEvent("auth", "auth.login.failed", fmt.Sprintf("%s-%d", prefix, i),
			map[string]any{"version": 1, "email": "bench@example.com", "ip": "192.0.2.1", "reason": "invalid_credentials", "at": time.Now().UTC()})
		if err != nil {
			b.Fatal(err)
		}
		cl.Produce(context.Background(), &kgo.Record{Topic: "auth.login.failed", Value: ce}, func(_ *kgo.Record, err error) {
			if err != nil {
				b.Error(err)
			}
		})
	}
	if err := cl.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// waitRows waits until exactly n events with ids prefix-* are in the log; more is a failure
// (an event recorded twice), and so is not getting there within timeout.
func waitRows(tb testing.TB, conn *pgx.Conn, prefix string, n int, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var got int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM audit.log WHERE event_id LIKE $1`, prefix+"-%").Scan(&got); err != nil {
			tb.Fatal(err)
		}
		if got == n {
			return
		}
		if got > n || time.Now().After(deadline) {
			tb.Fatalf("%d rows for %d events", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkIngestThroughBroker: events produced into Kafka as fast as it takes them, delivered
// by audit's sidecar, appended to the chain and committed. Reports events/s.
func BenchmarkIngestThroughBroker(b *testing.B) {
	needStack(b)
	conn := db(b)
	prefix := fmt.Sprintf("ingest%d", time.Now().UnixNano())
	meter := stack.CPUMeter(group, "audit")
	before, err := meter.Read()
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	produce(b, prefix, b.N, 0)
	waitRows(b, conn, prefix, b.N, 10*time.Minute)
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	after, err := meter.Read()
	if err != nil {
		b.Fatal(err)
	}
	// Where an event's CPU goes: the producer (this process, which signs each event), the
	// broker, audit's sidecar and app, PostgreSQL.
	spent := after.Minus(before)
	b.Logf("CPU per event (µs): %s", spent.Table(float64(b.N)))
	for _, name := range []string{"machine", "load", "kafka", "audit.dapr", "audit", "postgres"} {
		b.ReportMetric(spent.Per(name, float64(b.N)), name+"-cpu-µs/event")
	}
}

// BenchmarkIngestLatency publishes at a fixed rate (1,000 events/s for 10 s) and reports the
// publish-to-commit latency percentiles (recorded_at minus the time in the payload). Run it
// with -benchtime 1x.
func BenchmarkIngestLatency(b *testing.B) {
	needStack(b)
	conn := db(b)
	for b.Loop() {
		prefix := fmt.Sprintf("latency%d", time.Now().UnixNano())
		const rate, n = 1000, 10000
		produce(b, prefix, n, rate)
		waitRows(b, conn, prefix, n, 10*time.Minute)
		rows, err := conn.Query(context.Background(), `SELECT extract(epoch FROM recorded_at - occurred_at) * 1000 FROM audit.log WHERE event_id LIKE $1`, prefix+"-%")
		if err != nil {
			b.Fatal(err)
		}
		lat, err := pgx.CollectRows(rows, pgx.RowTo[float64])
		if err != nil {
			b.Fatal(err)
		}
		slices.Sort(lat)
		b.ReportMetric(lat[len(lat)/2], "p50-ms")
		b.ReportMetric(lat[len(lat)*99/100], "p99-ms")
	}
}

// scratch makes an empty copy of the log's tables in a schema of its own.
func scratch(b *testing.B, name string) *pgx.Conn {
	ctx := context.Background()
	admin := db(b)
	for _, q := range []string{`DROP SCHEMA IF EXISTS ` + name + ` CASCADE`, `CREATE SCHEMA ` + name,
		`CREATE TABLE ` + name + `.log (LIKE audit.log INCLUDING ALL)`, `CREATE TABLE ` + name + `.checkpoints (LIKE audit.checkpoints INCLUDING ALL)`,
		`CREATE TABLE ` + name + `.plain (LIKE audit.log INCLUDING ALL)`} {
		if _, err := admin.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	cfg, _ := pgx.ParseConfig(stack.Endpoints().PostgresURL)
	cfg.RuntimeParams["search_path"] = name
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(ctx); _, _ = admin.Exec(ctx, `DROP SCHEMA IF EXISTS `+name+` CASCADE`) })
	return conn
}

func sampleEntry(i int) *chain.Entry {
	now := time.Now()
	return &chain.Entry{EventID: fmt.Sprintf("e%d", i), Topic: "auth.login.failed", Source: "auth", Actor: "email:bench@example.com",
		Action: "auth.login.failed", Resource: "", Outcome: "failure", OccurredAt: now, RecordedAt: now,
		Payload: `{"at":"2026-11-23T00:00:00Z","email":"bench@example.com","ip":"192.0.2.1","reason":"invalid_credentials","version":1}`}
}

// BenchmarkAppend compares what audit does with each delivered batch, a chained append of 100
// events (lock, one idempotency query, head read, hashes, one COPY), with a plain COPY of the
// same 100 rows: one transaction per batch in both. ns/op is per batch of 100.
func BenchmarkAppend(b *testing.B) {
	needStack(b)
	ctx := context.Background()
	conn := scratch(b, "audit_bench_append")
	const batch = 100
	entries := func(start int) []*chain.Entry {
		es := make([]*chain.Entry, batch)
		for k := range es {
			es[k] = sampleEntry(start + k)
		}
		return es
	}
	b.Run("chain", func(b *testing.B) {
		i := 0
		for b.Loop() {
			es := entries(i)
			if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { _, err := chain.AppendBatch(ctx, tx, es); return err }); err != nil {
				b.Fatal(err)
			}
			i += batch
		}
	})
	b.Run("plain-copy", func(b *testing.B) {
		i := 0
		for b.Loop() {
			rows := make([][]any, 0, batch)
			for k, e := range entries(i) {
				rows = append(rows, []any{int64(i + k + 1), e.EventID, e.Topic, e.Source, e.Actor, e.Action, e.Resource, e.Outcome,
					e.OccurredAt, e.RecordedAt, e.Payload, chain.Genesis, chain.Genesis})
			}
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				_, err := tx.CopyFrom(ctx, pgx.Identifier{"plain"}, logColumns, pgx.CopyFromRows(rows))
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			i += batch
		}
	})
}

// logColumns are the log's columns, as the benchmarks copy rows in.
var logColumns = []string{"pos", "event_id", "topic", "source", "actor", "action", "resource", "outcome",
	"occurred_at", "recorded_at", "payload", "prev_hash", "hash"}

// BenchmarkVerify recomputes a chain of 200,000 rows; rows/s and the time per million are
// reported.
func BenchmarkVerify(b *testing.B) {
	needStack(b)
	ctx := context.Background()
	conn := scratch(b, "audit_bench_verify")
	const n = 200000
	rows := make([][]any, 0, n)
	prev := chain.Genesis
	for i := range n {
		e := sampleEntry(i)
		e.Pos = int64(i + 1)
		e.OccurredAt, e.RecordedAt = e.OccurredAt.UTC().Truncate(time.Microsecond), e.RecordedAt.UTC().Truncate(time.Microsecond)
		e.PrevHash, e.Hash = prev, e.Sum(prev)
		prev = e.Hash
		rows = append(rows, []any{e.Pos, e.EventID, e.Topic, e.Source, e.Actor, e.Action, e.Resource, e.Outcome, e.OccurredAt, e.RecordedAt, e.Payload, e.PrevHash, e.Hash})
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"log"}, logColumns, pgx.CopyFromRows(rows)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		res, err := chain.Verify(ctx, conn, nil)
		if err != nil || !res.OK || res.Rows != n {
			b.Fatalf("%+v %v", res, err)
		}
	}
	per := time.Since(start) / time.Duration(b.N)
	b.ReportMetric(float64(n)/per.Seconds(), "rows/s")
	b.ReportMetric(per.Seconds()*1e6/n, "s/million")
}
