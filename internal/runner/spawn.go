// Starting an app instance and its sidecar as child processes.

package runner

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goplt/goplt/internal/compile"
	"github.com/goplt/goplt/internal/envvar"
	"github.com/goplt/goplt/internal/proc"
)

// portAttempts bounds the starts of one app that fail because a port was taken after it was
// reserved (only a foreign program binding inside the pool can do that).
const portAttempts = 3

// startApp starts a and its sidecar and waits until they are ready. When one of them could not
// bind a port, it stops both, reserves new ports and tries again, at most portAttempts times.
func (g *Group) startApp(ctx context.Context, a *App) error {
	for attempt := 1; ; attempt++ {
		err := g.startOnce(ctx, a)
		if err == nil || attempt == portAttempts || !a.lostPort() {
			return err
		}
		fmt.Fprintf(g.opts.Output, "goplt: %s could not bind a port it was given (%v); retrying with new ports (attempt %d of %d)\n",
			a.Name(), err, attempt+1, portAttempts)
		a.stopProcesses()
		if err := g.assignPorts(a); err != nil {
			return err
		}
	}
}

// lostPort says whether the app or its sidecar exited because an address was in use.
func (a *App) lostPort() bool {
	for _, p := range []*proc.Process{a.Process(), a.Sidecar()} {
		if p == nil || !p.Exited() {
			continue
		}
		for _, l := range p.Tail() {
			if strings.Contains(l, "address already in use") || strings.Contains(l, "could not listen on any endpoint") {
				return true
			}
		}
	}
	return false
}

// stopProcesses stops the app first, so it can finish requests through its sidecar, then the
// sidecar.
func (a *App) stopProcesses() {
	if p := a.Process(); p != nil {
		p.Stop(10 * time.Second)
	}
	if p := a.Sidecar(); p != nil {
		p.Stop(10 * time.Second)
	}
}

func (g *Group) startOnce(ctx context.Context, a *App) error {
	rc, err := g.render(a)
	if err != nil {
		return err
	}
	if err := g.spawn(a, rc, true); err != nil {
		return err
	}
	if err := g.waitReady(ctx, a, rc.SelfRegister); err != nil {
		return err
	}
	if a.outside {
		fmt.Fprintf(g.opts.Output, "goplt: %s's sidecar ready (http :%d grpc :%d); the app runs outside goplt, on :%d\n", a.Name(), a.HTTPPort, a.GRPCPort, a.AppPort)
	} else {
		fmt.Fprintf(g.opts.Output, "goplt: %s ready (app :%d, sidecar http :%d grpc :%d)\n", a.Name(), a.AppPort, a.HTTPPort, a.GRPCPort)
	}
	g.wg.Add(1)
	go g.supervise(ctx, a, rc)
	return nil
}

// render renders the instance's Dapr configuration for this run, and the app's environment
// that goes with it.
func (g *Group) render(a *App) (renderedConfig, error) {
	rc, err := renderConfig(g.path(a.Spec.Config), filepath.Join(g.opts.WorkDir, "config"), a, g.opts.OTLPEndpoint, g.opts.TraceSampling)
	if err != nil {
		return rc, fmt.Errorf("app %s: %w", a.Name(), err)
	}
	a.env = g.appEnv(a, rc)
	return rc, nil
}

// spawn starts the instance's app process (unless the user runs it: Options.Except) and, with
// sidecar, its sidecar.
func (g *Group) spawn(a *App, rc renderedConfig, sidecar bool) error {
	if a.Spec.HasApp() && !a.outside {
		p, err := g.spawnApp(a)
		if err != nil {
			return err
		}
		a.mu.Lock()
		a.app = p
		a.mu.Unlock()
	}
	if sidecar {
		p, err := g.spawnSidecar(a, rc.Path)
		if err != nil {
			return err
		}
		a.mu.Lock()
		a.sidecar = p
		a.mu.Unlock()
	}
	return nil
}

func (g *Group) spawnApp(a *App) (*proc.Process, error) {
	var path string
	var args []string
	if bin, ok := g.bins[a.Spec.ID]; ok {
		path = bin
	} else {
		path, args = a.Spec.Command[0], a.Spec.Command[1:]
	}
	return proc.Start(proc.Spec{
		Name: a.Name(), Path: path, Args: args, Env: append(os.Environ(), a.env...), Dir: g.opts.Root,
		Output: g.out.writer(a.Spec.ID, a.Name()),
	})
}

// appEnv is what an app instance is given beyond the environment goplt runs in.
func (g *Group) appEnv(a *App, rc renderedConfig) []string {
	env := []string{
		"APP_ID=" + a.Spec.ID,
		"APP_PORT=" + strconv.Itoa(a.AppPort),
		"DAPR_HTTP_PORT=" + strconv.Itoa(a.HTTPPort),
		"DAPR_GRPC_PORT=" + strconv.Itoa(a.GRPCPort),
		"DAPR_API_TOKEN=" + a.DaprAPIToken,
		"APP_API_TOKEN=" + a.AppAPIToken,
		envvar.DatabaseURL + "=" + g.opts.Infra.PostgresURL,
		envvar.Policies + "=" + filepath.Join(g.opts.Root, compile.PoliciesFile),
		envvar.Routes + "=" + filepath.Join(g.opts.Root, compile.RoutesFile),
		envvar.Volumes + "=" + g.opts.Infra.VolumesDir,
	}
	keys := slices.Sorted(maps.Keys(a.Spec.Env))
	for _, k := range keys {
		env = append(env, k+"="+a.Spec.Env[k])
	}
	// For the traces the app starts: its sidecar's rate as this run renders it (the
	// dashboard turns tracing on), exported where the sidecars export theirs.
	if g.opts.OTLPEndpoint != "" {
		env = append(env, envvar.OTLPEndpoint+"=http://"+g.opts.OTLPEndpoint)
	}
	return append(env, envvar.TraceSamplingRate+"="+rc.SamplingRate)
}

func (g *Group) spawnSidecar(a *App, cfgPath string) (*proc.Process, error) {
	anchors, err := g.opts.Infra.TrustAnchors()
	if err != nil {
		return nil, err
	}
	args := []string{
		"--app-id", a.Spec.ID,
		"--dapr-http-port", strconv.Itoa(a.HTTPPort),
		"--dapr-grpc-port", strconv.Itoa(a.GRPCPort),
		"--dapr-internal-grpc-port", strconv.Itoa(a.InternalGRPCPort),
		"--dapr-listen-addresses", "127.0.0.1",
		"--metrics-port", strconv.Itoa(a.MetricsPort),
		"--config", cfgPath,
		"--enable-mtls",
		"--sentry-address", g.opts.Infra.SentryAddress,
		"--control-plane-trust-domain", g.opts.Infra.TrustDomain,
		"--log-level", "warn",
	}
	if a.Spec.HasApp() {
		args = append(args, "--app-port", strconv.Itoa(a.AppPort), "--app-protocol", "http",
			"--app-channel-address", "127.0.0.1")
	}
	for _, r := range a.Spec.Resources {
		args = append(args, "--resources-path", g.path(r))
	}
	env := append(os.Environ(),
		"DAPR_TRUST_ANCHORS="+anchors,
		"DAPR_API_TOKEN="+a.DaprAPIToken,
		"APP_API_TOKEN="+a.AppAPIToken,
		"DAPR_HOST_IP=127.0.0.1",
		"CONSUL_HTTP_ADDR="+g.opts.Infra.ConsulHTTP,
		// Read by the components through envRef (components/local/*.yaml).
		envvar.KafkaBrokers+"="+strings.Join(g.opts.Infra.KafkaBrokers, ","),
		envvar.PostgresURL+"="+g.opts.Infra.PostgresURL,
		envvar.SecretsFile+"="+g.opts.Infra.SecretsFile,
	)
	return proc.Start(proc.Spec{
		Name: a.Name() + " sidecar", Path: g.opts.Daprd, Args: args, Env: env, Dir: g.opts.Root,
		Output: g.out.writer(a.Spec.ID, a.Name()+".dapr"),
	})
}
