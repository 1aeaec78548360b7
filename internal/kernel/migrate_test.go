package kernel

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/goplt/goplt/internal/stacktest"
)

var stack *stacktest.Stack

func TestMain(m *testing.M) {
	stacktest.Main(m, func(_ context.Context, s *stacktest.Stack) (func(), error) {
		stack = s
		return nil, nil
	})
}

func migrationsFS(files map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, body := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(body)}
	}
	return fsys
}

// Concurrent starts of several replicas: one migrates, the others find nothing to do, and
// every migration is recorded once.
func TestMigrateConcurrently(t *testing.T) {
	if stack == nil {
		t.Skip("integration test: needs PostgreSQL")
	}
	ctx := context.Background()
	fsys := migrationsFS(map[string]string{
		"00001_a.sql": "-- +goose Up\nCREATE TABLE a (id int PRIMARY KEY);\nSELECT pg_sleep(0.3);\n",
		"00002_b.sql": "-- +goose Up\nCREATE TABLE b (id int PRIMARY KEY REFERENCES a);\n",
	})
	log := newLogger(io.Discard, Config{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pool, err := openPool(ctx, stack.Endpoints().PostgresURL, "concurrent", nil)
			if err != nil {
				errs <- err
				return
			}
			defer pool.Close()
			errs <- migrate(ctx, pool, "concurrent", "", fsys, log)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent migrate: %v", err)
		}
	}
	pool, err := openPool(ctx, stack.Endpoints().PostgresURL, "concurrent", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM concurrent.goose_db_version WHERE version_id > 0`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("recorded migrations = %d, want 2", n)
	}
	// The tables live in the module's schema, not in public.
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'concurrent' AND table_name IN ('a','b')`).Scan(&n); err != nil || n != 2 {
		t.Errorf("tables in schema concurrent = %d (%v), want 2", n, err)
	}
}

// A failing migration is named in the error, and leaves nothing half-applied.
func TestMigrationErrorNamesFile(t *testing.T) {
	if stack == nil {
		t.Skip("integration test: needs PostgreSQL")
	}
	ctx := context.Background()
	pool, err := openPool(ctx, stack.Endpoints().PostgresURL, "broken", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	fsys := migrationsFS(map[string]string{
		"00001_ok.sql":  "-- +goose Up\nCREATE TABLE ok (id int);\n",
		"00002_bad.sql": "-- +goose Up\nCREATE TABLE half (id int);\nCREATE TABEL oops (id int);\n",
	})
	err = migrate(ctx, pool, "broken", "", fsys, newLogger(io.Discard, Config{}))
	if err == nil || !strings.Contains(err.Error(), "migration 00002_bad.sql of schema broken failed") {
		t.Fatalf("error = %v, want it to name 00002_bad.sql", err)
	}
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('broken.half') IS NOT NULL`).Scan(&exists); err != nil || exists {
		t.Errorf("the failed migration left table half behind (exists=%v, err=%v)", exists, err)
	}
}

// --migrate-only applies the module's migrations and returns without serving.
func TestMigrateOnly(t *testing.T) {
	if stack == nil {
		t.Skip("integration test: needs PostgreSQL")
	}
	m := testModule{name: "jobdemo", init: func(k *Kernel) {
		k.Migrations(migrationsFS(map[string]string{"00001_t.sql": "-- +goose Up\nCREATE TABLE t (id int);\n"}), ".")
	}}
	env := map[string]string{"GOPLT_DATABASE_URL": stack.Endpoints().PostgresURL}
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), m, []string{"--migrate-only"}, func(k string) string { return env[k] }, io.Discard)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("--migrate-only did not return")
	}
	pool, err := openPool(context.Background(), stack.Endpoints().PostgresURL, "jobdemo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var exists bool
	if err := pool.QueryRow(context.Background(), `SELECT to_regclass('jobdemo.t') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		t.Fatalf("migration not applied: %v %v", exists, err)
	}
}
