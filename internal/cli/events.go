package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/goplt/goplt/internal/infra"
	"github.com/goplt/goplt/internal/localsecrets"
)

func newEventsCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "events", Short: "Operate the event-signing keys"}
	var retain time.Duration
	var file, app string
	rotate := &cobra.Command{
		Use:   "rotate-key",
		Short: "Rotate an app's event-signing key in the local secret store",
		Long: `rotate-key adds a new event-signing key to the app's event-signing-<app> secret, retires the
current one and publishes the new public key in the event-keys secret: the new key signs from
then on, the retired one still verifies. Keys retired more than --retain ago are dropped, and
subscribers then reject events they signed: --retain must exceed the longest time an event can
wait in an outbox or the broker.

The local secret store reads its file at start: restart the platform (goplt run) so every
sidecar loads the new keys. On Kubernetes, update the two secrets instead
(docs/event-bus-security.md); kernels re-read them within minutes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if app == "" {
				return usageError{fmt.Errorf("--app is required")}
			}
			if retain <= 0 {
				return usageError{fmt.Errorf("--retain must be positive")}
			}
			if file == "" {
				file = infra.SecretsFile(e.home)
			}
			added, dropped, err := localsecrets.RotateEventKey(file, app, time.Now(), retain)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "new event-signing key %s for %s written to %s\n", added, app, file)
			if len(dropped) > 0 {
				fmt.Fprintf(e.stdout, "dropped keys retired more than %s ago: %s\n", retain, strings.Join(dropped, ", "))
			}
			fmt.Fprintln(e.stdout, "restart the platform (goplt run) so the local secret store reads it")
			return nil
		},
	}
	rotate.Flags().StringVar(&app, "app", "", "app id whose key to rotate")
	rotate.Flags().DurationVar(&retain, "retain", 7*24*time.Hour, "how long a retired key stays verifiable")
	rotate.Flags().StringVar(&file, "secrets-file", "", "secrets file (default <home>/data/secrets.json)")
	cmd.AddCommand(rotate)
	return cmd
}
