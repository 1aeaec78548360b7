package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/goplt/goplt/internal/stacktest"
)

// BenchmarkIdempotency: the same authenticated write (PUT /billing/subscription) through the
// gateway at 200 req/s and at 50 req/s, with a fresh Idempotency-Key on every request and
// without, in turns over three rounds; p50 and p99 of each, and the whole machine's CPU per
// request at 200 req/s.
func BenchmarkIdempotency(b *testing.B) {
	needStack(b)
	var tokens []string
	for range 8 {
		tokens = append(tokens, editor(b).tok.AccessToken)
	}
	n := 0
	put := func(keyed bool) func() *http.Request {
		return func() *http.Request {
			n++
			req, _ := http.NewRequest(http.MethodPut, base+"/billing/subscription", strings.NewReader(`{"planId":"pro"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+tokens[n%len(tokens)])
			if keyed {
				k := make([]byte, 12)
				_, _ = rand.Read(k)
				req.Header.Set("Idempotency-Key", hex.EncodeToString(k))
			}
			return req
		}
	}
	targets := []target{{name: "keyed", req: put(true)}, {name: "plain", req: put(false)}}
	meter := stack.CPUMeter(group, "gateway", "billing")
	for range b.N {
		got := map[string]*run{"keyed": {}, "plain": {}, "keyed@50": {}, "plain@50": {}}
		cpu := map[string]stacktest.CPUReading{}
		for range 3 {
			for _, t := range targets {
				before, err := meter.Read()
				if err != nil {
					b.Fatal(err)
				}
				r, err := fixedRate(t, 200, 5*time.Second)
				if err != nil {
					b.Fatal(err)
				}
				after, err := meter.Read()
				if err != nil {
					b.Fatal(err)
				}
				got[t.name].add(r)
				if cpu[t.name] == nil {
					cpu[t.name] = stacktest.CPUReading{}
				}
				cpu[t.name] = cpu[t.name].Plus(after.Minus(before))
				// The same at a quarter of the rate, where the machine is not near saturation.
				if r, err = fixedRate(t, 50, 4*time.Second); err != nil {
					b.Fatal(err)
				}
				got[t.name+"@50"].add(r)
			}
		}
		for _, name := range []string{"keyed", "plain"} {
			r, q := got[name], got[name+"@50"]
			b.ReportMetric(float64(r.percentile(50))/1e6, name+"-p50-ms")
			b.ReportMetric(float64(r.percentile(99))/1e6, name+"-p99-ms")
			b.ReportMetric(float64(q.percentile(50))/1e6, name+"-p50-ms-at50")
			b.ReportMetric(cpu[name].Per("machine", float64(r.n)), name+"-cpu-us")
			b.Logf("%s at 200 req/s: p50 %s p99 %s (%d requests); at 50 req/s: p50 %s p99 %s; CPU per request at 200 req/s (µs):\n%s",
				name, r.percentile(50).Round(time.Microsecond), r.percentile(99).Round(time.Microsecond), r.n,
				q.percentile(50).Round(time.Microsecond), q.percentile(99).Round(time.Microsecond), cpu[name].Table(float64(r.n)))
		}
	}
}

// BenchmarkStateVsSQL: one row written and read through notes' sidecar (Dapr's state API over
// HTTP, state.postgresql v2) and the same row with the statements that component runs, sent
// straight to PostgreSQL over one connection. One call at a time.
func BenchmarkStateVsSQL(b *testing.B) {
	needStack(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, stack.Endpoints().PostgresURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	inst := group.App("notes")
	value := []byte(`{"id":"bench","text":"a note of ordinary length, about what a user writes","createdAt":"2026-12-04T00:00:00Z"}`)
	stateCall := func(method, url string, body []byte) {
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		req.Header.Set("dapr-api-token", inst.DaprAPIToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := loadClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			b.Fatalf("%s %s: %d", method, url, resp.StatusCode)
		}
	}
	save := []byte(fmt.Sprintf(`[{"key":"bench-row","value":%s}]`, value))
	const rounds = 2000
	measure := func(name string, f func()) {
		for range 100 { // warm connections and plans
			f()
		}
		start := time.Now()
		for range rounds {
			f()
		}
		b.ReportMetric(float64(time.Since(start).Nanoseconds())/rounds, name+"-ns/op")
	}
	for range b.N {
		measure("state-write", func() { stateCall(http.MethodPost, inst.DaprHTTP()+"/v1.0/state/notes", save) })
		measure("state-read", func() { stateCall(http.MethodGet, inst.DaprHTTP()+"/v1.0/state/notes/bench-row", nil) })
		measure("sql-write", func() {
			if _, err := conn.Exec(ctx, `INSERT INTO state AS t (key, value, etag, expires_at) VALUES ($1, $2, gen_random_uuid(), NULL)
				ON CONFLICT (key) DO UPDATE SET value = $2, updated_at = now(), etag = gen_random_uuid(), expires_at = NULL`, "notes||bench-sql-row", value); err != nil {
				b.Fatal(err)
			}
		})
		measure("sql-read", func() {
			var v []byte
			var etag string
			if err := conn.QueryRow(ctx, `SELECT value, etag::text FROM state WHERE key = $1 AND (expires_at IS NULL OR expires_at >= now())`, "notes||bench-sql-row").Scan(&v, &etag); err != nil {
				b.Fatal(err)
			}
		})
	}
}
