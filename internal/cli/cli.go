// Package cli is the goplt command line: the local stack (infra), running apps (run), the
// third-party binaries (deps) and machine checks (doctor).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/goplt/goplt/internal/binaries"
	"github.com/goplt/goplt/internal/envvar"
	"github.com/goplt/goplt/internal/repo"
)

// Exit codes that scripts can rely on.
const (
	ExitOK        = 0 // success
	ExitFailure   = 1 // the command ran and failed
	ExitUsage     = 2 // unknown command or flag, bad arguments
	ExitUnhealthy = 3 // status/doctor: something is not running or not healthy
)

// usageError marks errors in how the command was called.
type usageError struct{ error }

// exitError carries a specific exit code.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// env is what every command shares.
type env struct {
	stdout, stderr io.Writer
	root           string // repository root ("" outside a checkout)
	home           string // --home
}

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	root := newRoot(e)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(stderr, "goplt:", ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "goplt:", err)
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		fmt.Fprintln(stderr, "Run 'goplt --help' for usage.")
		return ExitUsage
	}
	return ExitFailure
}

// isCobraUsage recognises cobra's own argument errors, which it returns as plain errors.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument", "accepts ", "requires at least", "requires at most", "bad flag syntax"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "goplt",
		Short: "Build, run and ship a business system made of Dapr modules",
		Long: `goplt runs the local stack (PostgreSQL, a Kafka-protocol broker, Consul, Dapr Sentry),
starts apps with their Dapr sidecars from a run plan, and builds the pinned daprd,
sentry and consul binaries it needs.

Exit codes: 0 success, 1 failure, 2 usage error, 3 unhealthy (status, doctor).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			e.root, _ = repo.RootFromWd() // "" outside a checkout: commands that need it say so
			if e.home == "" {
				e.home = os.Getenv(envvar.Home)
			}
			if e.home == "" {
				base := e.root
				if base == "" {
					base, _ = os.Getwd()
				}
				e.home = filepath.Join(base, ".goplt")
			}
			abs, err := filepath.Abs(e.home)
			if err != nil {
				return err
			}
			e.home = abs
			return nil
		},
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().StringVar(&e.home, "home", "", "folder for the local stack's data, logs and state (env GOPLT_HOME; default <repo>/.goplt)")
	root.AddCommand(newInfraCmd(e), newRunCmd(e), newDepsCmd(e), newDoctorCmd(e), newValidateCmd(e), newGenerateCmd(e), newGraphCmd(e), newExplainCmd(e), newMigrateCmd(e), newAuthCmd(e), newEventsCmd(e), newContractsCmd(e), newAuditCmd(e), newSecretsCmd(e), newImagesCmd(e), newEnvCmd(e), newNewCmd(e), newVersionCmd(e))
	return root
}

func (e *env) resolver() binaries.Resolver {
	return binaries.Resolver{RepoRoot: e.root, Progress: e.stderr}
}

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the versions goplt pins",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(e.stdout, "dapr runtime %s\nconsul %s\n", binaries.DaprVersion, binaries.ConsulVersion)
			return nil
		},
	}
}

func newDepsCmd(e *env) *cobra.Command {
	var check, stock, kube, otelcol bool
	cmd := &cobra.Command{
		Use:   "deps",
		Short: "Find or build the pinned daprd, sentry and consul binaries",
		Long: `deps makes sure daprd, sentry and consul are available at the pinned versions.
daprd is goplt's own build of the Dapr runtime with only the components the platform uses
(tools/dapr/daprd); sentry and consul are upstream's. A consul of the right version on PATH
is used as is; anything missing is built once from the Go module proxy into the user cache
(` + binaries.DefaultCacheDir() + `, or $GOPLT_CACHE/bin) and reused by every clone.
Missing binaries build side by side, with a progress line per binary every 20 s. Cold on 2
cores: daprd about 6 minutes, sentry 4, consul 15 (consul decides the total).
--stock also builds Dapr's stock daprd (every component), for comparisons; --kubernetes the
cluster the tests apply the Kubernetes output to (a real node's kubelet, kube-proxy and
CoreDNS included; each of the largest about 4.5 minutes cold when built alone); --otelcol
the OpenTelemetry Collector the telemetry tests export to (about 90 s cold).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r := e.resolver()
			tools := binaries.All()
			if stock {
				tools = append(tools, binaries.StockDaprd())
			}
			if kube {
				tools = append(tools, binaries.Kubernetes()...)
			}
			if otelcol {
				tools = append(tools, binaries.OTelCollector())
			}
			if !check {
				if _, err := r.EnsureAll(cmd.Context(), tools); err != nil {
					return err
				}
			}
			missing := 0
			for _, t := range tools {
				name := t.Name
				if t.Variant == binaries.StockDaprd().Variant {
					name = "daprd-stock"
				}
				p, err := r.Find(cmd.Context(), t)
				if err != nil {
					fmt.Fprintf(e.stdout, "%-11s %-8s missing (`goplt deps` builds it)\n", name, t.Version)
					missing++
					continue
				}
				fmt.Fprintf(e.stdout, "%-11s %-8s %s\n", name, t.Version, p)
			}
			if missing > 0 {
				return &exitError{code: ExitUnhealthy, msg: fmt.Sprintf("%d binaries missing", missing)}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&stock, "stock", false, "also build Dapr's stock daprd (-tags allcomponents) for comparisons")
	cmd.Flags().BoolVar(&check, "check", false, "only report; build nothing (exit 3 when something is missing)")
	cmd.Flags().BoolVar(&otelcol, "otelcol", false, "also build the OpenTelemetry Collector the telemetry tests export to")
	cmd.Flags().BoolVar(&kube, "kubernetes", false, "also build the Kubernetes control plane the tests run (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl)")
	return cmd
}
