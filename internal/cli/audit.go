package cli

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/goplt/goplt/apps/audit/chain"
	"github.com/goplt/goplt/internal/infra"
	"github.com/goplt/goplt/internal/localsecrets"
	"github.com/goplt/goplt/internal/platformsecrets"
)

func newAuditCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Work with the audit log"}
	var dbURL, schema, secretsFile, pubKey string
	var witnesses []string
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Recompute the audit log's hash chain and check it against every signed checkpoint",
		Long: `verify reads the audit log straight from PostgreSQL (not through the audit service, which
could be the thing compromised), recomputes every entry's hash, and checks the database's latest
checkpoint and every checkpoint each witness holds: its signature, and that the log reaches its
position with the hash it signed. It names the first position where an edited, deleted or
reordered row or a truncated tail shows, and exits 1 then. A witness that cannot be read fails
the verification too: nothing it vouches for can be confirmed.

Witnesses keep checkpoints outside PostgreSQL, so deleting rows together with the database's
checkpoints still shows. --witness names one (repeat it); each replaces the defaults:
  file:<folder or file>   audit's witness file (checkpoints.jsonl)
  topic:<topic>           the checkpoint topic on the local stack's broker
  http(s)://...           a remote witness answering JSON lines or one checkpoint
  none                    no witness (the database's own checkpoints only)
By default, with a local stack under --home: its witness volume and topic:audit.checkpoint.

By default it uses the local stack under --home: its database and the checkpoint key from its
secrets file. Elsewhere give --database-url and --public-key (base64 Ed25519).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Minute)
			defer cancel()
			st, stErr := infra.LoadState(e.home)
			if dbURL == "" {
				if stErr != nil {
					return fmt.Errorf("no --database-url and no local stack under %s: %w", e.home, stErr)
				}
				dbURL = st.Endpoints.PostgresURL
			}
			if len(witnesses) == 0 && stErr == nil {
				witnesses = []string{"file:" + chain.LocalWitnessDir(st.Endpoints.VolumesDir), "topic:" + chain.CheckpointTopic}
			}
			pub, err := checkpointPublicKey(pubKey, secretsFile, e.home)
			if err != nil {
				return err
			}
			var held []chain.Witnessed
			for _, w := range witnesses {
				if w == "none" {
					continue
				}
				h, err := e.readWitness(ctx, w)
				if err != nil {
					return err
				}
				held = append(held, h)
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
			res, err := chain.Verify(ctx, conn, pub, held...)
			if err != nil {
				return fmt.Errorf("read the audit log: %w", err)
			}
			for _, w := range res.Witnesses {
				fmt.Fprintf(e.stdout, "  %s vouches for %d rows\n", w.Name, w.Pos)
				if w.Problem != "" {
					fmt.Fprintf(e.stdout, "    FAILS: %s\n", w.Problem)
				}
			}
			if len(held) == 0 {
				fmt.Fprintln(e.stdout, "  no witness: rows deleted together with the database's checkpoints would not show")
			}
			switch {
			case !res.OK && res.FirstBad == 0:
				return &exitError{code: ExitFailure, msg: fmt.Sprintf("audit log NOT VERIFIED: %s (%d rows read)", res.Problem, res.Rows)}
			case !res.OK:
				return &exitError{code: ExitFailure, msg: fmt.Sprintf("audit log TAMPERED at position %d: %s (%d rows read)", res.FirstBad, res.Problem, res.Rows)}
			}
			cp := "no checkpoint yet"
			if res.Checkpoint > 0 {
				cp = fmt.Sprintf("signed checkpoint at %d verified", res.Checkpoint)
			}
			fmt.Fprintf(e.stdout, "audit log intact: %d rows, %s, %d witnesses agree (%s)\n", res.Rows, cp, len(held), time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	verify.Flags().StringVar(&dbURL, "database-url", "", "PostgreSQL URL (default: the local stack's)")
	verify.Flags().StringVar(&schema, "schema", "audit", "schema of the audit log")
	verify.Flags().StringVar(&secretsFile, "secrets-file", "", "local secrets file holding the checkpoint key (default <home>/data/secrets.json)")
	verify.Flags().StringVar(&pubKey, "public-key", "", "checkpoint public key, base64 (instead of the secrets file)")
	verify.Flags().StringArrayVar(&witnesses, "witness", nil, "a witness to check against: file:<path>, topic:<topic>, http(s)://..., or none (repeatable)")
	cmd.AddCommand(verify)
	return cmd
}

// readWitness reads what one witness holds. Only a malformed spec is an error; a witness that
// cannot be read is returned as such, for verify to report.
func (e *env) readWitness(ctx context.Context, spec string) (chain.Witnessed, error) {
	kind, arg, _ := strings.Cut(spec, ":")
	switch {
	case kind == "http" || kind == "https":
		return readURLWitness(ctx, spec), nil
	case kind == "file" && arg != "":
		if fi, err := os.Stat(arg); err == nil && !fi.IsDir() {
			return chain.ReadWitnessDir(filepath.Dir(arg)), nil
		}
		return chain.ReadWitnessDir(arg), nil
	case kind == "topic" && arg != "":
		w := chain.Witnessed{Name: spec}
		bus, err := e.bus()
		if err != nil {
			w.Err = err
			return w, nil
		}
		events, err := bus.Read(ctx, arg)
		if err != nil {
			w.Err = err
			return w, nil
		}
		for _, ev := range events {
			var c chain.Checkpoint
			switch {
			case ev.Verified != nil:
				w.Malformed = append(w.Malformed, fmt.Sprintf("offset %d@%d: %v", ev.Offset, ev.Partition, ev.Verified))
			case json.Unmarshal(ev.Data, &c) != nil:
				w.Malformed = append(w.Malformed, fmt.Sprintf("offset %d@%d: not a checkpoint", ev.Offset, ev.Partition))
			default:
				w.Checkpoints = append(w.Checkpoints, c)
			}
		}
		return w, nil
	}
	return chain.Witnessed{}, usageError{fmt.Errorf("--witness %q: want file:<path>, topic:<topic>, http(s)://... or none", spec)}
}

// readURLWitness GETs a remote witness: JSON lines, or one checkpoint.
func readURLWitness(ctx context.Context, url string) chain.Witnessed {
	w := chain.Witnessed{Name: url}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		w.Err = err
		return w
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.Err = err
		return w
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		w.Err = fmt.Errorf("answered %s", resp.Status)
		return w
	}
	w.Checkpoints, w.Malformed, w.Err = chain.ReadCheckpoints(io.LimitReader(resp.Body, 64<<20))
	return w
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
	key, err := platformsecrets.CheckpointKey(f[platformsecrets.AuditCheckpointKey][platformsecrets.AuditCheckpointSeed])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", secretsFile, err)
	}
	return key.Public().(ed25519.PublicKey), nil
}
