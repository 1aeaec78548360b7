package cli

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/goplt/goplt/apps/audit/chain"
	"github.com/goplt/goplt/internal/infra"
	"github.com/goplt/goplt/internal/localsecrets"
)

func newAuditCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Work with the audit log"}
	var dbURL, schema, secretsFile, pubKey string
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Recompute the audit log's hash chain and check its latest signed checkpoint",
		Long: `verify reads the audit log straight from PostgreSQL (not through the audit service, which
could be the thing compromised), recomputes every entry's hash, and checks the latest
checkpoint's signature and position. It names the first position where an edited, deleted or
reordered row or a truncated tail shows, and exits 1 then.

By default it uses the local stack under --home: its database and the checkpoint key from its
secrets file. Elsewhere give --database-url and --public-key (base64 Ed25519).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Minute)
			defer cancel()
			if dbURL == "" {
				st, err := infra.LoadState(e.home)
				if err != nil {
					return fmt.Errorf("no --database-url and no local stack under %s: %w", e.home, err)
				}
				dbURL = st.Endpoints.PostgresURL
			}
			pub, err := checkpointPublicKey(pubKey, secretsFile, e.home)
			if err != nil {
				return err
			}
			cfg, err := pgx.ParseConfig(dbURL)
			if err != nil {
				return usageError{fmt.Errorf("--database-url: %w", err)}
			}
			cfg.RuntimeParams["search_path"] = schema
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				return err
			}
			defer conn.Close(ctx)
			start := time.Now()
			res, err := chain.Verify(ctx, conn, pub)
			if err != nil {
				return fmt.Errorf("read the audit log: %w", err)
			}
			if !res.OK {
				return &exitError{code: ExitFailure, msg: fmt.Sprintf("audit log TAMPERED at position %d: %s (%d rows read)", res.FirstBad, res.Problem, res.Rows)}
			}
			cp := "no checkpoint yet"
			if res.Checkpoint > 0 {
				cp = fmt.Sprintf("signed checkpoint at %d verified", res.Checkpoint)
			}
			fmt.Fprintf(e.stdout, "audit log intact: %d rows, %s (%s)\n", res.Rows, cp, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	verify.Flags().StringVar(&dbURL, "database-url", "", "PostgreSQL URL (default: the local stack's)")
	verify.Flags().StringVar(&schema, "schema", "audit", "schema of the audit log")
	verify.Flags().StringVar(&secretsFile, "secrets-file", "", "local secrets file holding the checkpoint key (default <home>/data/secrets.json)")
	verify.Flags().StringVar(&pubKey, "public-key", "", "checkpoint public key, base64 (instead of the secrets file)")
	cmd.AddCommand(verify)
	return cmd
}

func checkpointPublicKey(b64, secretsFile, home string) (ed25519.PublicKey, error) {
	if b64 != "" {
		b, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return nil, usageError{fmt.Errorf("--public-key must be base64 of %d bytes", ed25519.PublicKeySize)}
		}
		return b, nil
	}
	if secretsFile == "" {
		secretsFile = infra.SecretsFile(home)
	}
	f, err := localsecrets.Read(secretsFile)
	if err != nil {
		return nil, err
	}
	key, err := localsecrets.CheckpointKey(f[localsecrets.AuditCheckpointKey][localsecrets.AuditCheckpointSeed])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", secretsFile, err)
	}
	return key.Public().(ed25519.PublicKey), nil
}
