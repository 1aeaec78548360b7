package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/goplt/goplt/internal/clustersecrets"
	"github.com/goplt/goplt/internal/compile"
	"github.com/goplt/goplt/internal/envvar"
)

func newSecretsCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "secrets", Short: "Create the Secrets a deployment needs"}
	var dir, kubectl, kubeconfig, kubeContext, dbEnv string
	k := &cobra.Command{
		Use:   "kubernetes",
		Short: "Create, in the cluster, every Secret the generated Kubernetes output references",
		Long: `secrets kubernetes creates in the profile's namespace every Secret the pods reference
that goplt can make: each app's app and API tokens (for the Dapr injector), its event-signing
keys and everyone's public event keys, the access-token keys, the audit checkpoint key and the
bootstrap administrator (email and a random password, in identity-bootstrap-admin). With the
database URL in the environment variable --database-url-env names (default GOPLT_DATABASE_URL),
it also creates goplt-postgres. Keys are fresh and random.

It is idempotent: a Secret that exists is kept as it is (so keys stay stable), except
event-keys, the public keys, which follows the apps' key sets. It prints Secret names, never a
value, and passes values to kubectl on standard input, never as arguments. The broker's user
passwords and CA come from Strimzi (KafkaUser, the cluster CA Secret).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := e.loadManifests(dir)
			if err != nil {
				return err
			}
			prof, ok := set.Platform.Spec.Profiles["kubernetes"]
			if !ok {
				return fmt.Errorf("platform.yaml has no kubernetes profile")
			}
			p := clustersecrets.Plan{Namespace: prof.Namespace, PostgresSecret: compile.PostgresSecret, DatabaseURL: os.Getenv(dbEnv)}
			if p.Namespace == "" {
				p.Namespace = "default"
			}
			for _, m := range set.Modules {
				p.Apps = append(p.Apps, m.Spec.App.ID)
				p.Declared = append(p.Declared, m.Spec.Secrets...)
				if len(m.Spec.Events.Publishes)+len(m.Spec.Events.Subscribes) > 0 {
					p.EventApps = append(p.EventApps, m.Spec.App.ID)
				}
			}
			run := func(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
				var pre []string
				if kubeconfig != "" {
					pre = append(pre, "--kubeconfig="+kubeconfig)
				}
				if kubeContext != "" {
					pre = append(pre, "--context="+kubeContext)
				}
				c := exec.CommandContext(ctx, kubectl, append(pre, args...)...)
				c.Stdin = bytes.NewReader(stdin)
				var stdout, stderr bytes.Buffer
				c.Stdout, c.Stderr = &stdout, &stderr
				if err := c.Run(); err != nil {
					return nil, fmt.Errorf("kubectl %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
				}
				return stdout.Bytes(), nil
			}
			r, err := clustersecrets.Ensure(cmd.Context(), run, p, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "namespace %s: %d created, %d updated, %d kept\n", p.Namespace, len(r.Created), len(r.Updated), len(r.Kept))
			for _, n := range r.Created {
				fmt.Fprintf(e.stdout, "created  secret/%s\n", n)
			}
			for _, n := range r.Updated {
				fmt.Fprintf(e.stdout, "updated  secret/%s\n", n)
			}
			for _, n := range r.Missing {
				if n == p.PostgresSecret {
					fmt.Fprintf(e.stdout, "missing  secret/%s: set %s to the database URL and run again, or create it with key url\n", n, dbEnv)
					continue
				}
				fmt.Fprintf(e.stdout, "missing  secret/%s: a module declares it; create it (kubectl create secret generic %s ...)\n", n, n)
			}
			if len(r.Missing) > 0 {
				return &exitError{code: ExitUnhealthy, msg: fmt.Sprintf("%d secret(s) still missing", len(r.Missing))}
			}
			return nil
		},
	}
	manifestsFlag(k, &dir)
	k.Flags().StringVar(&kubectl, "kubectl", "kubectl", "the kubectl to run")
	k.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: kubectl's)")
	k.Flags().StringVar(&kubeContext, "context", "", "kubeconfig context (default: the current one)")
	k.Flags().StringVar(&dbEnv, "database-url-env", envvar.DatabaseURL, "environment variable holding the PostgreSQL URL for goplt-postgres")
	cmd.AddCommand(k)
	return cmd
}
