package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/goplt/goplt/internal/binaries"
	"github.com/goplt/goplt/internal/compile"
	"github.com/goplt/goplt/internal/dashboard"
	"github.com/goplt/goplt/internal/infra"
	"github.com/goplt/goplt/internal/manifest"
	"github.com/goplt/goplt/internal/runner"
	"github.com/goplt/goplt/internal/runplan"
)

func newRunCmd(e *env) *cobra.Command {
	var planPath string
	var only, except []string
	var noColor, watchFlag bool
	var dashboardAddr string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the platform locally: the stack, then every app with its Dapr sidecar",
		Long: `run starts the local stack (unless one is already running), then the apps of the run
plan with their daprd sidecars, in dependency order, each gated on the readiness of what
it depends on (its /readyz, its sidecar, and a passing Consul health check). Logs are
prefixed by app. Ctrl-C stops everything this command started.

--except <app> runs everything but that app: goplt starts its sidecar and writes the app's
environment to <home>/run/<app>.env, for your debugger or IDE (dlv debug, VS Code's envFile);
the gateway and other callers reach the app once it answers.

--watch rebuilds and restarts only the app whose code changed (its sidecar stays up; the old
process drains its requests); a change to manifests/ or schemas/ is validated, regenerated
and restarts the apps whose manifest changed, sidecars included. Errors are printed and what
runs keeps running.`,
		Args: cobra.NoArgs,
	}
	ports := portFlags(cmd)
	var manifestsDir string
	manifestsFlag(cmd, &manifestsDir)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		if e.root == "" {
			return fmt.Errorf("run goplt from inside the goplt repository (no go.mod of github.com/goplt/goplt above %s)", mustWd())
		}
		if planPath == "" || manifestsDir != "" {
			// The generated plan must describe the manifests as they are now: an edited
			// manifest with a cycle, an unknown dependency or any other problem is reported
			// here, with its line, before anything starts, and so is a forgotten generate.
			if err := e.checkGenerated(manifestsDir); err != nil {
				return err
			}
		}
		if planPath == "" {
			planPath = filepath.Join(e.root, compile.RunPlanFile)
		}
		plan, err := runplan.Load(planPath)
		if err != nil {
			return err
		}
		for _, id := range only {
			if _, ok := plan.App(id); !ok {
				return usageError{fmt.Errorf("--only %s: no such app in %s", id, planPath)}
			}
		}
		for _, id := range except {
			a, ok := plan.App(id)
			switch {
			case !ok:
				return usageError{fmt.Errorf("--except %s: no such app in %s", id, planPath)}
			case !a.HasApp():
				return usageError{fmt.Errorf("--except %s: %s is a sidecar without an app; there is nothing to run outside", id, id)}
			}
		}
		daprd, err := binaries.SidecarPath(ctx, e.resolver().Ensure)
		if err != nil {
			return err
		}
		stack, err := e.stackUp(ctx, *ports)
		if err != nil {
			return err
		}
		defer stack.Stop()
		dash, dashURL, stopDash, err := e.startDashboard(ctx, dashboardAddr, manifestsDir, stack.Endpoints())
		if err != nil {
			return err
		}
		defer stopDash()
		opts := runner.Options{
			Root: e.root, Plan: plan, Infra: stack.Endpoints(), Daprd: daprd,
			WorkDir: filepath.Join(e.home, "run", "apps"), Output: e.stdout,
			Color: !noColor && isTerminal(os.Stdout), Only: only, Except: except,
		}
		if dash != nil {
			fmt.Fprintf(e.stdout, "goplt: the developer dashboard is at %s (apps and sidecars send it their traces, metrics and logs)\n", dashURL)
			opts.OTLPEndpoint = strings.TrimPrefix(dashURL, "http://")
			opts.Lines = dash.Line
		}
		group, err := runner.Start(ctx, opts)
		if err != nil {
			return err
		}
		defer group.Stop()
		if dash != nil {
			dash.SetGroup(group)
		}
		fmt.Fprintln(e.stdout, "goplt: all apps ready; Ctrl-C stops everything")
		if dash != nil {
			fmt.Fprintf(e.stdout, "goplt: dashboard: %s\n", dashURL)
		}
		printInvokeHint(e, plan, group)
		printGatewayHint(e, group)
		for _, id := range except {
			if err := e.printOutsideHint(group, id); err != nil {
				return err
			}
		}
		if watchFlag {
			go e.watchAndReload(ctx, group, plan, stack.Endpoints())
		}
		// A dead database or broker under running apps is a failure to report, not to sit on.
		waitCtx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		for _, p := range stack.Processes() {
			go func() {
				select {
				case <-p.Done():
					cancel(fmt.Errorf("infrastructure process died: %s", p.Describe()))
				case <-waitCtx.Done():
				}
			}()
		}
		if err := group.Wait(waitCtx); err != nil {
			return err
		}
		if ctx.Err() == nil {
			return context.Cause(waitCtx)
		}
		fmt.Fprintln(e.stderr, "goplt: stopping")
		return nil
	}
	cmd.Flags().StringVar(&planPath, "plan", "", "run plan (default <repo>/deploy/local/runplan.yaml)")
	cmd.Flags().StringSliceVar(&only, "only", nil, "start only these app ids (and what they depend on)")
	cmd.Flags().StringSliceVar(&except, "except", nil, "run these app ids yourself (a debugger): goplt starts only their sidecars")
	cmd.Flags().BoolVar(&noColor, "no-color", false, "do not colour log prefixes")
	cmd.Flags().BoolVar(&watchFlag, "watch", false, "rebuild and restart an app when its code changes; regenerate and restart when manifests change")
	cmd.Flags().StringVar(&dashboardAddr, "dashboard", "127.0.0.1:8090", `the developer dashboard's address (loopback; "off": none)`)
	return cmd
}

// startDashboard serves the developer dashboard on addr (another free loopback port when addr
// is taken) and returns its URL; nil when addr is "off".
func (e *env) startDashboard(ctx context.Context, addr, manifestsDir string, ep infra.Endpoints) (*dashboard.Server, string, func(), error) {
	if addr == "off" {
		return nil, "", func() {}, nil
	}
	set, err := e.loadManifests(manifestsDir)
	if err != nil {
		return nil, "", nil, err
	}
	arts, err := compile.Generate(set)
	if err != nil {
		return nil, "", nil, err
	}
	opts := dashboard.Options{Set: set, Artifacts: arts, Infra: ep}
	dash, at, stop, err := dashboard.Start(addr, opts)
	if err != nil {
		fmt.Fprintf(e.stderr, "goplt: the dashboard cannot listen on %s (%v); using another port\n", addr, err)
		if dash, at, stop, err = dashboard.Start("127.0.0.1:0", opts); err != nil {
			return nil, "", nil, err
		}
	}
	return dash, "http://" + at, stop, nil
}

// printInvokeHint shows how to call the apps from a shell through the first sidecar that has
// no app (a plan's development caller), which the apps' access control admits.
func printInvokeHint(e *env, plan *runplan.Plan, group *runner.Group) {
	var caller *runner.App
	var targets []string
	for _, a := range plan.Apps {
		switch g := group.App(a.ID); {
		case g == nil:
		case !a.HasApp() && caller == nil:
			caller = g
		case a.HasApp():
			targets = append(targets, a.ID)
		}
	}
	if caller == nil || len(targets) == 0 {
		return
	}
	fmt.Fprintf(e.stdout, "goplt: call the apps through the %s sidecar, for example:\n"+
		"  curl -s -H 'dapr-api-token: %s' %s/v1.0/invoke/%s/method/<path>\n",
		caller.Spec.ID, caller.DaprAPIToken, caller.DaprHTTP(), targets[0])
}

// printGatewayHint prints the gateway's URL (the platform's gateway app, per
// manifests/platform.yaml) and a three-step walkthrough.
func printGatewayHint(e *env, group *runner.Group) {
	set, err := manifest.LoadDir(filepath.Join(e.root, "manifests"), e.root)
	if err != nil || set.Platform.Spec.Gateway == "" {
		return
	}
	gw := group.App(set.Platform.Spec.Gateway)
	if gw == nil {
		return
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", gw.AppPort)
	fmt.Fprintf(e.stdout, `goplt: the API gateway is at %[1]s (OpenAPI: %[1]s/openapi.json). Try:
  curl -s %[1]s/users -d '{"email":"ann@example.com","password":"a long passphrase"}'
  TOKEN=$(curl -s %[1]s/login -d '{"email":"ann@example.com","password":"a long passphrase"}' | sed 's/.*"accessToken":"\([^"]*\)".*/\1/')
  curl -s %[1]s/blog/posts -H "Authorization: Bearer $TOKEN" -d '{"title":"Hello","body":"from the gateway"}'
`, url)
}

// printOutsideHint writes the environment of an app run outside goplt to <home>/run/<id>.env
// (dotenv lines, readable by the owner only: it holds the sidecar's tokens) and says how to
// start the app with it.
func (e *env) printOutsideHint(group *runner.Group, id string) error {
	file := filepath.Join(e.home, "run", id+".env")
	var b strings.Builder
	b.WriteString("# goplt run --except " + id + ": the environment of " + id + ", for this run only.\n")
	for _, kv := range group.OutsideEnv(id) {
		k, v, _ := strings.Cut(kv, "=")
		b.WriteString(k + "=" + shellQuote(v) + "\n")
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		return err
	}
	a := group.App(id)
	pkg := a.Spec.Build
	if pkg == "" {
		pkg = "./apps/" + id
	}
	fmt.Fprintf(e.stdout, `goplt: %[1]s runs outside goplt: its sidecar is up and waits for it on :%[2]d. Start it with
  set -a; . %[3]s; set +a; dlv debug %[4]s     (or go run %[4]s)
  or from your IDE with the env file %[3]s (VS Code launch.json: "envFile"; GoLand: EnvFile)
  callers (the gateway) reach %[1]s once it answers; a new goplt run writes new tokens
`, id, a.AppPort, file, pkg)
	return nil
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0 && os.Getenv("NO_COLOR") == ""
}

func mustWd() string {
	wd, _ := os.Getwd()
	return strconv.Quote(wd)
}
