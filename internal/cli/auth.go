package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/goplt/goplt/internal/infra"
	"github.com/goplt/goplt/internal/localsecrets"
)

func newAuthCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "auth", Short: "Operate the auth service's keys"}
	var retain time.Duration
	var file string
	rotate := &cobra.Command{
		Use:   "rotate-key",
		Short: "Rotate the access-token signing key in the local secret store",
		Long: `rotate-key adds a new signing key to the auth-signing-keys secret and retires the current
one: the new key signs from then on, the retired one stays in the JWKS so its tokens verify
until they expire. Keys retired more than --retain ago are dropped; run the command again
after --retain to drop the key it retired now.

The local secret store reads its file at start: restart the auth sidecar (or goplt run) to
load the new key. On Kubernetes, update the secret instead (docs/auth.md); auth re-reads it
every GOPLT_AUTH_KEY_REFRESH.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if retain <= 0 {
				return usageError{fmt.Errorf("--retain must be positive (longer than the access-token lifetime)")}
			}
			if file == "" {
				file = infra.SecretsFile(e.home)
			}
			added, dropped, err := localsecrets.RotateSigningKey(file, time.Now(), retain)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "new signing key %s written to %s\n", added, file)
			if len(dropped) > 0 {
				fmt.Fprintf(e.stdout, "dropped keys retired more than %s ago: %s\n", retain, strings.Join(dropped, ", "))
			}
			fmt.Fprintln(e.stdout, "restart the auth sidecar (or goplt run) so the local secret store reads it")
			return nil
		},
	}
	rotate.Flags().DurationVar(&retain, "retain", 15*time.Minute, "how long a retired key stays verifiable (must exceed the access-token lifetime plus GOPLT_AUTH_KEY_REFRESH)")
	rotate.Flags().StringVar(&file, "secrets-file", "", "secrets file (default <home>/data/secrets.json)")
	cmd.AddCommand(rotate)
	return cmd
}
