package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/goplt/goplt/internal/binaries"
	"github.com/goplt/goplt/internal/infra"
	"github.com/goplt/goplt/internal/kafkabroker"
)

// portFlags binds the configurable ports of the stack.
func portFlags(cmd *cobra.Command) *infra.Ports {
	p := infra.DefaultPorts()
	f := cmd.Flags()
	f.IntVar(&p.Postgres, "postgres-port", p.Postgres, "PostgreSQL port")
	f.IntSliceVar(&p.Kafka, "kafka-ports", p.Kafka, "Kafka broker ports, one per broker")
	f.IntVar(&p.ConsulHTTP, "consul-port", p.ConsulHTTP, "Consul HTTP API port")
	f.IntVar(&p.ConsulDNS, "consul-dns-port", p.ConsulDNS, "Consul DNS port")
	f.IntVar(&p.SentryGRPC, "sentry-port", p.SentryGRPC, "Sentry gRPC port")
	return &p
}

// stackConfig finds (or builds) consul and sentry and describes the stack.
func (e *env) stackConfig(ctx context.Context, ports infra.Ports, detach bool) (infra.Config, error) {
	r := e.resolver()
	consulBin, err := r.Ensure(ctx, binaries.Consul())
	if err != nil {
		return infra.Config{}, err
	}
	sentryBin, err := r.Ensure(ctx, binaries.Sentry())
	if err != nil {
		return infra.Config{}, err
	}
	self, err := os.Executable()
	if err != nil {
		return infra.Config{}, fmt.Errorf("locate the goplt executable: %w", err)
	}
	return infra.Config{
		Home: e.home, Ports: ports, Consul: consulBin, Sentry: sentryBin, Self: self,
		Detach: detach, Progress: e.stderr,
	}, nil
}

// stackUp brings up the stack for a command that needs it (run, migrate): it reuses a healthy
// running one, or starts one attached to this process. Stop the result when done.
func (e *env) stackUp(ctx context.Context, ports infra.Ports) (*infra.Stack, error) {
	cfg, err := e.stackConfig(ctx, ports, false)
	if err != nil {
		return nil, err
	}
	return infra.Up(ctx, cfg)
}

func newInfraCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "infra",
		Short: "Start, stop and inspect the local stack (PostgreSQL, Kafka broker, Consul, Sentry)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usageError{errors.New("infra needs a subcommand: up, down, status or reset")}
		},
	}
	up := &cobra.Command{
		Use:   "up",
		Short: "Start the local stack in the background (data is kept between runs)",
		Long: `up starts a private PostgreSQL cluster, a Kafka-protocol broker, a Consul dev agent and
Dapr's Sentry as background processes on loopback, waits until each answers a real
readiness probe, and records them in <home>/infra.json. It is a no-op when a healthy
stack is already running. Stop it with 'goplt infra down'.`,
		Args: cobra.NoArgs,
	}
	ports := portFlags(up)
	up.RunE = func(cmd *cobra.Command, args []string) error {
		cfg, err := e.stackConfig(cmd.Context(), *ports, true)
		if err != nil {
			return err
		}
		st, err := infra.Up(cmd.Context(), cfg)
		if err != nil {
			return err
		}
		printEndpoints(e, st.Endpoints())
		return nil
	}
	down := &cobra.Command{
		Use:   "down",
		Short: "Stop the local stack; leaves no process behind (data is kept)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return infra.Down(cmd.Context(), e.home, e.stderr)
		},
	}
	var asJSON bool
	status := &cobra.Command{
		Use:   "status",
		Short: "Show each service of the local stack: address, pid and health (exit 3 if unhealthy)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ss, _, err := infra.Status(cmd.Context(), e.home)
			if errors.Is(err, os.ErrNotExist) {
				return &exitError{code: ExitUnhealthy, msg: "the local stack is not running (goplt infra up)"}
			}
			if err != nil {
				return err
			}
			bad := 0
			for _, s := range ss {
				if !s.Healthy {
					bad++
				}
			}
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(ss); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SERVICE\tADDRESS\tPID\tHEALTH\tLOG")
				for _, s := range ss {
					health := "healthy"
					if !s.Healthy {
						health = "UNHEALTHY: " + s.Detail
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", s.Name, s.Addr, s.Pid, health, s.Log)
				}
				tw.Flush()
			}
			if bad > 0 {
				return &exitError{code: ExitUnhealthy, msg: fmt.Sprintf("%d of %d services unhealthy", bad, len(ss))}
			}
			return nil
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	reset := &cobra.Command{
		Use:   "reset",
		Short: "Delete the local stack's data (PostgreSQL cluster, broker log, Sentry CA); it must be down",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := infra.Reset(e.home); err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "infra: removed %s/data\n", e.home)
			return nil
		},
	}
	var dataDir, secretsFile string
	var brokerPorts []int
	broker := &cobra.Command{
		Use:    "kafka-broker",
		Short:  "Run the local Kafka-protocol broker in the foreground (used by infra up)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log := slog.New(slog.NewJSONHandler(e.stderr, nil)).With("app", "kafka")
			admin, err := infra.BrokerAdmin(secretsFile)
			if err != nil {
				return err
			}
			return kafkabroker.Run(cmd.Context(), dataDir, brokerPorts, admin, log)
		},
	}
	broker.Flags().StringVar(&dataDir, "data-dir", "", "folder for the broker's data")
	broker.Flags().IntSliceVar(&brokerPorts, "ports", nil, "one port per broker")
	_ = broker.MarkFlagRequired("data-dir")
	broker.Flags().StringVar(&secretsFile, "secrets-file", "", "the local secrets file holding the superuser's credentials")
	_ = broker.MarkFlagRequired("ports")
	_ = broker.MarkFlagRequired("secrets-file")
	cmd.AddCommand(up, down, status, reset, broker)
	return cmd
}

func printEndpoints(e *env, ep infra.Endpoints) {
	fmt.Fprintf(e.stdout, "postgres  %s\nkafka     %s\nconsul    http://%s\nsentry    %s\n",
		ep.PostgresURL, strings.Join(ep.KafkaBrokers, ","), ep.ConsulHTTP, ep.SentryAddress)
}
