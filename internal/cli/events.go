package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/goplt/goplt/internal/brokeracl"
	"github.com/goplt/goplt/internal/bustool"
	"github.com/goplt/goplt/internal/contracts"
	"github.com/goplt/goplt/internal/infra"
	"github.com/goplt/goplt/internal/localsecrets"
	"github.com/goplt/goplt/internal/outbox"
)

func newEventsCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "events", Short: "Look at the event bus, publish signed events, rotate event-signing keys"}
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
	cmd.AddCommand(rotate, newEventsTailCmd(e), newEventsPublishCmd(e))
	return cmd
}

// bus is the running local stack's event bus.
func (e *env) bus() (bustool.Bus, error) {
	st, err := infra.LoadState(e.home)
	if err != nil || st == nil {
		return bustool.Bus{}, &exitError{code: ExitUnhealthy, msg: "no local stack here: start one with goplt infra up or goplt run"}
	}
	b := bustool.Bus{Brokers: st.Endpoints.KafkaBrokers, SecretsFile: st.Endpoints.SecretsFile}
	if e.root != "" {
		set, err := brokeracl.Load(filepath.Join(e.root, brokeracl.LocalFile))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return b, err
		}
		b.ACLs = set
	}
	return b, nil
}

func newEventsTailCmd(e *env) *cobra.Command {
	var fromStart, asJSON bool
	var limit int
	cmd := &cobra.Command{
		Use:   "tail <topic>",
		Short: "Print a topic's events as they arrive, each signature verified",
		Long: `tail reads a topic of the local stack's broker as its administrator, without joining any
consumer group (the apps' subscriptions lose nothing), and prints one line per event:
time, partition@offset, id, source, whether its signature verifies against the source's
published key (as every subscriber checks it), and its data. --json prints each record's
value as the broker holds it instead. Ctrl-C stops.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := e.bus()
			if err != nil {
				return err
			}
			return b.Tail(cmd.Context(), args[0], bustool.TailOptions{FromStart: fromStart, Limit: limit}, func(ev bustool.Event) error {
				if asJSON {
					_, err := fmt.Fprintf(e.stdout, "%s\n", ev.Raw)
					return err
				}
				verdict := "verified"
				if ev.Verified != nil {
					verdict = "NOT VERIFIED (" + ev.Verified.Error() + ")"
				}
				_, err := fmt.Fprintf(e.stdout, "%s %s[%d]@%d id=%s source=%s %s %s\n", ev.Timestamp.UTC().Format(time.RFC3339Nano),
					ev.Topic, ev.Partition, ev.Offset, ev.ID, ev.Source, verdict, ev.Data)
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&fromStart, "from-start", false, "read the topic from its first event, not only new ones")
	cmd.Flags().IntVarP(&limit, "limit", "n", 0, "stop after this many events (0: never)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print each record's value (the CloudEvent) as stored")
	return cmd
}

func newEventsPublishCmd(e *env) *cobra.Command {
	var as, data, id string
	cmd := &cobra.Command{
		Use:   "publish <topic> --as <app> --data <json>",
		Short: "Publish an event signed as an app, so its subscribers accept it",
		Long: `publish sends a JSON payload on a topic of the local stack as app --as would: checked
against the topic's schema (its contract), wrapped in a CloudEvent signed with the app's
event-signing key, and produced with the app's broker credentials, so the broker's ACLs and
every subscriber treat it as that app's. --data takes the JSON, @file to read a file, or -
for standard input. (dapr publish sends unsigned events: subscribers dead-letter them.)`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic := args[0]
			if as == "" {
				return usageError{errors.New("--as <app> is required: the app the event is published as")}
			}
			payload, err := readData(data, cmd.InOrStdin())
			if err != nil {
				return usageError{err}
			}
			if err := e.checkPublication(as, topic, payload); err != nil {
				return err
			}
			b, err := e.bus()
			if err != nil {
				return err
			}
			if id == "" {
				id = outbox.NewEventID()
			}
			pub, err := b.Publish(cmd.Context(), as, topic, id, payload)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "published event %s on %s[%d]@%d as %s\n", id, topic, pub.Partition, pub.Offset, as)
			return nil
		},
	}
	cmd.Flags().StringVar(&as, "as", "", "app id to publish as (its manifest must publish the topic)")
	cmd.Flags().StringVar(&data, "data", "", "the payload: JSON, @file, or - for standard input")
	cmd.Flags().StringVar(&id, "id", "", "the event id (default: a new one); subscribers deduplicate by it")
	return cmd
}

// readData reads a --data value: JSON itself, @file, or - for r.
func readData(data string, r io.Reader) ([]byte, error) {
	var b []byte
	var err error
	switch {
	case data == "":
		return nil, errors.New("--data is required: the JSON payload, @file, or - for standard input")
	case data == "-":
		b, err = io.ReadAll(io.LimitReader(r, 1<<20))
	case strings.HasPrefix(data, "@"):
		b, err = os.ReadFile(data[1:])
	default:
		b = []byte(data)
	}
	if err != nil {
		return nil, err
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("--data is not valid JSON")
	}
	return b, nil
}

// checkPublication says whether app's manifest publishes topic and payload keeps its contract.
func (e *env) checkPublication(app, topic string, payload []byte) error {
	m, err := e.moduleOf(app)
	if err != nil {
		return err
	}
	for _, p := range m.Spec.Events.Publishes {
		if p.Topic != topic {
			continue
		}
		schema, err := os.ReadFile(filepath.Join(e.root, p.Schema))
		if err != nil {
			return err
		}
		ck, err := contracts.Set{Publishes: map[string]contracts.EventSchema{topic: {Version: p.PayloadVersion(), Schema: string(schema)}}}.Checker()
		if err != nil {
			return err
		}
		if err := ck.Outgoing(topic, payload); err != nil {
			return usageError{fmt.Errorf("the payload breaks %s's contract (%s): %w", topic, p.Schema, err)}
		}
		return nil
	}
	return usageError{fmt.Errorf("%s does not publish %s (%s): its broker user may not write it and subscribers would refuse it", app, topic, m.File())}
}
