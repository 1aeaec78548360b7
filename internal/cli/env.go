package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/goplt/goplt/internal/binaries"
	"github.com/goplt/goplt/internal/compile"
	"github.com/goplt/goplt/internal/envvar"
	"github.com/goplt/goplt/internal/infra"
	"github.com/goplt/goplt/internal/localsecrets"
	"github.com/goplt/goplt/internal/manifest"
	"github.com/goplt/goplt/internal/runner"
	"github.com/goplt/goplt/internal/runplan"
)

// daprCLISentryPort is where the Dapr CLI looks for Sentry when a Configuration turns on mTLS.
const daprCLISentryPort = 50001

func newEnvCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "env [app]",
		Short: "Print the exports that sidecars and apps started by hand (the Dapr CLI) need",
		Long: `env prints, as shell exports, what a sidecar and an app started outside goplt run need to
join the running local stack (goplt infra up): the infrastructure addresses the components read,
Sentry's trust anchors, the database URL, the compiled policies and routes, the token sidecars
present to their apps (APP_API_TOKEN; no DAPR_API_TOKEN, as the Dapr CLI's own calls to a
sidecar carry none), and DAPR_RUNTIME_PATH, a folder where the Dapr CLI finds goplt's daprd.
It also does what goplt run does before it starts sidecars: every app's event-signing keys and
broker user. Use it as

  eval "$(goplt env)"
  dapr run -f deploy/local/dapr.yaml

With an app id it adds that app's own variables (APP_ID, APP_PORT, its pub/sub component, and
what its manifest sets), for dapr run --app-id <app> ... -- go run ./apps/<app>. The token is
new on every call: export it once per shell. Values are printed for your shell; do not
paste them elsewhere.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := infra.LoadState(e.home)
			if err != nil || st == nil {
				return &exitError{code: ExitUnhealthy, msg: "no local stack here: start one with `goplt infra up --sentry-port 50001`"}
			}
			ep := st.Endpoints
			// What goplt run does before it starts sidecars: keys and broker users per app.
			plan, err := runplan.Load(filepath.Join(e.root, compile.RunPlanFile))
			if err != nil {
				return err
			}
			var apps []string
			for _, a := range plan.Apps {
				apps = append(apps, a.ID)
			}
			if err := runner.PrepareBus(cmd.Context(), e.root, ep, apps); err != nil {
				return err
			}
			anchors, err := ep.TrustAnchors()
			if err != nil {
				return err
			}
			daprd, err := e.resolver().Ensure(cmd.Context(), binaries.Daprd())
			if err != nil {
				return err
			}
			runtime := filepath.Join(e.home, "dapr-cli")
			if err := linkDaprd(runtime, daprd); err != nil {
				return err
			}
			vars := map[string]string{
				envvar.KafkaBrokers: strings.Join(ep.KafkaBrokers, ","),
				envvar.PostgresURL:  ep.PostgresURL,
				envvar.DatabaseURL:  ep.PostgresURL,
				envvar.SecretsFile:  ep.SecretsFile,
				envvar.Volumes:      ep.VolumesDir,
				envvar.Policies:     filepath.Join(e.root, compile.PoliciesFile),
				envvar.Routes:       filepath.Join(e.root, compile.RoutesFile),
				"CONSUL_HTTP_ADDR":  ep.ConsulHTTP,
				// Sidecars register this address in Consul (else the host's first interface).
				"DAPR_HOST_IP":       "127.0.0.1",
				"DAPR_TRUST_ANCHORS": anchors,
				"DAPR_RUNTIME_PATH":  runtime,
				envvar.DaprdNoActors: "1",
			}
			// The sidecar presents APP_API_TOKEN to the app, which refuses calls without it. No
			// DAPR_API_TOKEN: the Dapr CLI's own calls to a sidecar (its metadata, which dapr stop
			// and dapr list read) carry none, so a sidecar that required one would lose track of
			// its CLI. goplt run gives each sidecar both.
			tok, err := localsecrets.RandomToken()
			if err != nil {
				return err
			}
			vars["APP_API_TOKEN"] = tok
			if len(args) == 1 {
				if err := e.appEnv(args[0], vars); err != nil {
					return err
				}
			}
			if st.Ports.SentryGRPC != daprCLISentryPort {
				fmt.Fprintf(e.stdout, "# Sentry listens on %d; the Dapr CLI looks for it on %d: goplt infra down; goplt infra up --sentry-port %d\n",
					st.Ports.SentryGRPC, daprCLISentryPort, daprCLISentryPort)
			}
			keys := make([]string, 0, len(vars))
			for k := range vars {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(e.stdout, "export %s=%s\n", k, shellQuote(vars[k]))
			}
			fmt.Fprintln(e.stdout, "unset DAPR_API_TOKEN")
			return nil
		},
	}
}

// appEnv adds app id's own variables from the run plan.
func (e *env) appEnv(id string, vars map[string]string) error {
	m, err := e.moduleOf(id)
	if err != nil {
		return err
	}
	vars["APP_ID"] = id
	port := m.Spec.App.Port
	if port == 0 {
		port = 8080
	}
	vars["APP_PORT"] = fmt.Sprint(port)
	for k, v := range compile.AppEnv(m) {
		vars[k] = v
	}
	return nil
}

// moduleOf returns the module whose app id is id, or a usage error naming the app ids there are.
func (e *env) moduleOf(id string) (*manifest.Module, error) {
	set, err := e.loadManifests("")
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, m := range set.Modules {
		if m.Spec.App.ID == id {
			return m, nil
		}
		ids = append(ids, m.Spec.App.ID)
	}
	sort.Strings(ids)
	return nil, usageError{fmt.Errorf("no app %q: the manifests define %s", id, strings.Join(ids, ", "))}
}

// linkDaprd makes dir/.dapr/bin/daprd point at goplt's daprd: where the Dapr CLI looks for the
// runtime under DAPR_RUNTIME_PATH.
func linkDaprd(dir, daprd string) error {
	bin := filepath.Join(dir, ".dapr", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	link := filepath.Join(bin, "daprd")
	if cur, err := os.Readlink(link); err == nil && cur == daprd {
		return nil
	}
	_ = os.Remove(link)
	return os.Symlink(daprd, link)
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
