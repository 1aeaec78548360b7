package kernel

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// openPool connects to the database with every connection's search_path set to the module's
// schema, creating the schema if it is missing. Modules write unqualified table names.
// configure, if not nil, adjusts the pool's configuration (hooks) before it opens.
func openPool(ctx context.Context, url, schema string, configure func(*pgxpool.Config)) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	ident := pgx.Identifier{schema}.Sanitize()
	pcfg.ConnConfig.RuntimeParams["search_path"] = schema
	pcfg.ConnConfig.RuntimeParams["application_name"] = schema
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// The database may still be starting: retry until the bound.
	var conn *pgx.Conn
	for {
		conn, err = pgx.ConnectConfig(cctx, pcfg.ConnConfig.Copy())
		if err == nil {
			break
		}
		select {
		case <-cctx.Done():
			return nil, fmt.Errorf("connect to the database: %w", err)
		case <-time.After(250 * time.Millisecond):
		}
	}
	err = createSchema(cctx, conn, schema, ident)
	conn.Close(cctx)
	if err != nil {
		return nil, fmt.Errorf("create schema %s: %w", schema, err)
	}
	if configure != nil {
		configure(pcfg)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("database pool: %w", err)
	}
	return pool, nil
}

// createSchema creates the schema if missing. CREATE SCHEMA IF NOT EXISTS races with itself
// (unique violation) when replicas start together, so it runs under a transaction-scoped
// advisory lock.
func createSchema(ctx context.Context, conn *pgx.Conn, schema, ident string) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", schemaLockID("schema", schema)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+ident)
		return err
	})
}

// schemaLockID derives a stable advisory-lock id for one purpose on one schema.
func schemaLockID(purpose, schema string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("goplt-" + purpose + ":" + schema))
	return int64(h.Sum64() >> 1)
}

// migrate applies the module's pending migrations in version order, each recorded in the
// schema's goose_db_version table. A session-level advisory lock (one per schema) makes
// concurrent starts of several replicas safe: one migrates, the others wait and find nothing
// to do.
//
// set names the migration set: "" for the module's own (table goose_db_version), another name
// for a set the kernel applies (its own version table and lock, e.g. the outbox).
func migrate(ctx context.Context, pool *pgxpool.Pool, schema, set string, fsys fs.FS, log *slog.Logger) error {
	table, purpose := "goose_db_version", "migrate"
	if set != "" {
		table, purpose = "goplt_"+set+"_version", "migrate-"+set
	}
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(schemaLockID(purpose, schema)),
		lock.WithLockTimeout(1, 300)) // poll each second, for up to 5 minutes
	if err != nil {
		return err
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithSessionLocker(locker), goose.WithDisableGlobalRegistry(true), goose.WithTableName(table))
	if err != nil {
		return fmt.Errorf("migrations of schema %s: %w", schema, err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		var partial *goose.PartialError
		if errors.As(err, &partial) && partial.Failed != nil {
			return fmt.Errorf("migration %s of schema %s failed: %w", partial.Failed.Source.Path, schema, partial.Err)
		}
		return fmt.Errorf("migrations of schema %s: %w", schema, err)
	}
	for _, r := range results {
		log.Info("migration applied", "file", r.Source.Path, "duration_ms", r.Duration.Milliseconds())
	}
	return nil
}
