// Package runner starts the apps of a run plan with their Dapr sidecars on loopback, in
// dependency order, each gated on the readiness of what it depends on; it prefixes and colours
// their logs, restarts or stops per policy when something dies (saying which and why), and
// stops everything cleanly.
package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/goplt/goplt/internal/envvar"
	"github.com/goplt/goplt/internal/infra"
	"github.com/goplt/goplt/internal/ports"
	"github.com/goplt/goplt/internal/proc"
	"github.com/goplt/goplt/internal/runplan"
)

// Options configure a run.
type Options struct {
	Root    string // repository root; relative paths in the plan are resolved against it
	Plan    *runplan.Plan
	Infra   infra.Endpoints
	Daprd   string // daprd binary
	WorkDir string // rendered configurations and built app binaries go here
	Output  io.Writer
	Color   bool
	// ReadyTimeout bounds the wait for one app to become ready; zero means 2 minutes.
	ReadyTimeout time.Duration
	// Only starts just these app ids (and what they depend on); empty means all.
	Only []string
	// Ports reserves every app's and sidecar's ports; nil means a ports.Default() allocator
	// of the group's own, released by Stop.
	Ports *ports.Allocator
	// OTLPEndpoint (host:port of an OTLP/HTTP receiver, such as the developer dashboard)
	// makes every sidecar sample every request and export its spans there.
	OTLPEndpoint string
}

// App is a started instance of an app and its sidecar.
type App struct {
	Spec runplan.App
	// Instance numbers an app's replicas from 1.
	Instance int
	AppPort  int
	HTTPPort int // sidecar HTTP API
	GRPCPort int // sidecar gRPC API
	// InternalGRPCPort is the sidecar-to-sidecar port registered in Consul.
	InternalGRPCPort int
	MetricsPort      int
	// DaprAPIToken authenticates the app (and tests) to its sidecar.
	DaprAPIToken string
	// AppAPIToken authenticates the sidecar to the app.
	AppAPIToken string

	mu       sync.Mutex
	app      *proc.Process
	sidecar  *proc.Process
	restarts int
	ready    chan struct{}
}

// Restarts says how often the app or its sidecar was restarted after dying.
func (a *App) Restarts() int { a.mu.Lock(); defer a.mu.Unlock(); return a.restarts }

// Ready reports whether the instance has become ready once.
func (a *App) Ready() bool {
	select {
	case <-a.ready:
		return true
	default:
		return false
	}
}

// Name is the instance's name: the app id, then blog#2, blog#3 for further replicas.
func (a *App) Name() string {
	if a.Instance <= 1 {
		return a.Spec.ID
	}
	return a.Spec.ID + "#" + strconv.Itoa(a.Instance)
}

// Sidecar returns the sidecar process (for tests that kill it).
func (a *App) Sidecar() *proc.Process { a.mu.Lock(); defer a.mu.Unlock(); return a.sidecar }

// Process returns the app process (nil for a sidecar-only entry).
func (a *App) Process() *proc.Process { a.mu.Lock(); defer a.mu.Unlock(); return a.app }

// ConsulID is the instance's service id in Consul, as Dapr's resolver registers it.
func (a *App) ConsulID() string { return a.Spec.ID + "-127.0.0.1-" + strconv.Itoa(a.HTTPPort) }

// DaprHTTP is the base URL of the sidecar's HTTP API.
func (a *App) DaprHTTP() string { return "http://127.0.0.1:" + strconv.Itoa(a.HTTPPort) }

// Group is a running set of apps.
type Group struct {
	opts     Options
	apps     map[string][]*App // app id -> its instances
	order    []string
	bins     map[string]string
	out      *prefixer
	failed   chan error
	stopping chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	ownPorts bool // opts.Ports was made by Start, so Stop closes it
}

// App returns a started app's first instance by id (nil if it is not in the group).
func (g *Group) App(id string) *App {
	if len(g.apps[id]) == 0 {
		return nil
	}
	return g.apps[id][0]
}

// Instances returns every instance of an app.
func (g *Group) Instances(id string) []*App { return g.apps[id] }

// Start builds what the plan needs, then starts every app and sidecar in dependency order. It
// returns once all are ready, or with an error (after stopping what it started).
func Start(ctx context.Context, opts Options) (*Group, error) {
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 2 * time.Minute
	}
	if opts.Output == nil {
		opts.Output = io.Discard
	}
	order, err := opts.Plan.Order()
	if err != nil {
		return nil, err
	}
	order = selectApps(opts.Plan, order, opts.Only)
	ownPorts := opts.Ports == nil
	if ownPorts {
		if opts.Ports, err = ports.Default(); err != nil {
			return nil, err
		}
	}
	g := &Group{
		opts: opts, apps: map[string][]*App{}, order: order,
		out:      newPrefixer(opts.Output, opts.Color, order),
		failed:   make(chan error, len(order)*2),
		stopping: make(chan struct{}),
		ownPorts: ownPorts,
	}
	if err := os.MkdirAll(opts.WorkDir, 0o755); err != nil {
		g.Stop()
		return nil, err
	}
	if g.bins, err = g.buildApps(ctx); err != nil {
		g.Stop()
		return nil, err
	}
	if err := g.prepareBus(ctx); err != nil {
		g.Stop()
		return nil, err
	}
	for _, id := range order {
		spec, _ := opts.Plan.App(id)
		for i := range max(spec.Replicas, 1) {
			a := &App{Spec: spec, Instance: i + 1, DaprAPIToken: token(), AppAPIToken: token(), ready: make(chan struct{})}
			if err := g.assignPorts(a); err != nil {
				g.Stop()
				return nil, err
			}
			g.out.fit(a.Name())
			g.apps[id] = append(g.apps[id], a)
		}
	}

	// Each app starts as soon as everything it depends on is ready.
	// The first instance starts alone (it applies the migrations), then the others together.
	errs := make(chan error, len(order))
	for _, id := range order {
		first := g.App(id)
		go func() {
			for _, d := range first.Spec.DependsOn {
				select {
				case <-g.App(d).ready:
				case <-g.stopping:
					errs <- nil
					return
				}
			}
			errs <- g.startInstances(ctx, g.apps[id])
		}()
	}
	var all []error
	for range order {
		if err := <-errs; err != nil {
			all = append(all, err)
			g.stopOnce.Do(func() { close(g.stopping) }) // dependents waiting for this one give up
		}
	}
	if err := errors.Join(all...); err != nil {
		g.Stop()
		return nil, err
	}
	return g, nil
}

// startInstances starts an app's first instance, then the rest in parallel.
func (g *Group) startInstances(ctx context.Context, instances []*App) error {
	start := func(a *App) error {
		err := g.startApp(ctx, a)
		if err == nil {
			close(a.ready)
		}
		return err
	}
	if err := start(instances[0]); err != nil {
		return err
	}
	rest := make([]error, len(instances)-1)
	var wg sync.WaitGroup
	for i, a := range instances[1:] {
		wg.Add(1)
		go func() { defer wg.Done(); rest[i] = start(a) }()
	}
	wg.Wait()
	return errors.Join(rest...)
}

// selectApps keeps the apps in only and their dependencies, preserving order.
func selectApps(p *runplan.Plan, order, only []string) []string {
	if len(only) == 0 {
		return order
	}
	keep := map[string]bool{}
	var add func(string)
	add = func(id string) {
		if keep[id] {
			return
		}
		keep[id] = true
		a, _ := p.App(id)
		for _, d := range a.DependsOn {
			add(d)
		}
	}
	for _, id := range only {
		add(id)
	}
	var out []string
	for _, id := range order {
		if keep[id] {
			out = append(out, id)
		}
	}
	return out
}

// assignPorts reserves the app's port (unless its spec fixes one) and its sidecar's four,
// giving back any it held before.
func (g *Group) assignPorts(a *App) error {
	n := 5
	if a.Spec.AppPort != 0 {
		n = 4
	}
	ps, err := g.opts.Ports.Take(n)
	if err != nil {
		return fmt.Errorf("app %s: %w", a.Name(), err)
	}
	g.opts.Ports.Release(a.reserved()...)
	a.HTTPPort, a.GRPCPort, a.InternalGRPCPort, a.MetricsPort = ps[0], ps[1], ps[2], ps[3]
	if a.Spec.AppPort != 0 {
		a.AppPort = a.Spec.AppPort
	} else {
		a.AppPort = ps[4]
	}
	return nil
}

// reserved lists the ports assignPorts took for a (none before the first assignment).
func (a *App) reserved() []int {
	ps := []int{a.HTTPPort, a.GRPCPort, a.InternalGRPCPort, a.MetricsPort}
	if a.Spec.AppPort == 0 {
		ps = append(ps, a.AppPort)
	}
	return ps
}

func token() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// buildApps compiles the Go packages of the apps this group starts.
func (g *Group) buildApps(ctx context.Context) (map[string]string, error) {
	var apps []runplan.App
	for _, id := range g.order {
		a, _ := g.opts.Plan.App(id)
		apps = append(apps, a)
	}
	return BuildApps(ctx, g.opts.Root, filepath.Join(g.opts.WorkDir, "bin"), apps)
}

// BuildApps compiles every Go package the apps name into binDir, in one `go build` so shared
// packages compile once. It returns app id -> binary.
func BuildApps(ctx context.Context, root, binDir string, apps []runplan.App) (map[string]string, error) {
	bins := map[string]string{}
	var pkgs []string
	for _, a := range apps {
		if a.Build == "" {
			continue
		}
		pkgs = append(pkgs, a.Build)
		bins[a.ID] = filepath.Join(binDir, filepath.Base(a.Build))
	}
	if len(pkgs) == 0 {
		return bins, nil
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return nil, err
	}
	args := append([]string{"build", "-o", binDir + "/"}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build apps (%s): %w\n%s", strings.Join(pkgs, " "), err, out)
	}
	return bins, nil
}

func (g *Group) path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(g.opts.Root, p)
}

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
	rc, err := renderConfig(g.path(a.Spec.Config), filepath.Join(g.opts.WorkDir, "config"), a, g.opts.OTLPEndpoint)
	if err != nil {
		return fmt.Errorf("app %s: %w", a.Name(), err)
	}
	if a.Spec.HasApp() {
		p, err := g.spawnApp(a, rc)
		if err != nil {
			return err
		}
		a.mu.Lock()
		a.app = p
		a.mu.Unlock()
	}
	p, err := g.spawnSidecar(a, rc.Path)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.sidecar = p
	a.mu.Unlock()

	if err := g.waitReady(ctx, a, rc.SelfRegister); err != nil {
		return err
	}
	fmt.Fprintf(g.opts.Output, "goplt: %s ready (app :%d, sidecar http :%d grpc :%d)\n", a.Name(), a.AppPort, a.HTTPPort, a.GRPCPort)
	g.wg.Add(1)
	go g.supervise(ctx, a, rc)
	return nil
}

func (g *Group) spawnApp(a *App, rc renderedConfig) (*proc.Process, error) {
	var path string
	var args []string
	if bin, ok := g.bins[a.Spec.ID]; ok {
		path = bin
	} else {
		path, args = a.Spec.Command[0], a.Spec.Command[1:]
	}
	env := append(os.Environ(),
		"APP_ID="+a.Spec.ID,
		"APP_PORT="+strconv.Itoa(a.AppPort),
		"DAPR_HTTP_PORT="+strconv.Itoa(a.HTTPPort),
		"DAPR_GRPC_PORT="+strconv.Itoa(a.GRPCPort),
		"DAPR_API_TOKEN="+a.DaprAPIToken,
		"APP_API_TOKEN="+a.AppAPIToken,
		envvar.DatabaseURL+"="+g.opts.Infra.PostgresURL,
		envvar.Policies+"="+filepath.Join(g.opts.Root, "deploy", "policies", "ladon.json"),
		envvar.Routes+"="+filepath.Join(g.opts.Root, "deploy", "gateway", "routes.json"),
	)
	for k, v := range a.Spec.Env {
		env = append(env, k+"="+v)
	}
	// For the traces the app starts: its sidecar's rate as this run renders it (the
	// dashboard turns tracing on).
	env = append(env, envvar.TraceSamplingRate+"="+rc.SamplingRate)
	return proc.Start(proc.Spec{
		Name: a.Name(), Path: path, Args: args, Env: env, Dir: g.opts.Root,
		Output: g.out.writer(a.Spec.ID, a.Name()),
	})
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

// waitReady waits for the app's health path, the sidecar's health and, for a sidecar that
// registers itself, a passing Consul health check (until then callers get "no healthy
// services found").
func (g *Group) waitReady(ctx context.Context, a *App, selfRegister bool) error {
	ctx, cancel := context.WithTimeout(ctx, g.opts.ReadyTimeout)
	defer cancel()
	health := a.Spec.HealthPath
	if health == "" {
		health = "/readyz"
	}
	checks := []struct {
		what  string
		probe func(context.Context) error
	}{
		{"sidecar health", func(ctx context.Context) error { return sidecarIsOurs(ctx, a) }},
	}
	if a.Spec.HasApp() {
		checks = append([]struct {
			what  string
			probe func(context.Context) error
		}{{"app " + health, func(ctx context.Context) error {
			return httpOK(ctx, "http://127.0.0.1:"+strconv.Itoa(a.AppPort)+health, nil)
		}}}, checks...)
	}
	if selfRegister {
		cl, err := consul.NewClient(&consul.Config{Address: g.opts.Infra.ConsulHTTP})
		if err != nil {
			return err
		}
		checks = append(checks, struct {
			what  string
			probe func(context.Context) error
		}{"consul health", func(ctx context.Context) error {
			entries, _, err := cl.Health().Service(a.Spec.ID, "", true, (&consul.QueryOptions{}).WithContext(ctx))
			if err != nil {
				return err
			}
			for _, e := range entries {
				if e.Service.ID == a.ConsulID() {
					return nil
				}
			}
			return fmt.Errorf("%s is not registered in consul as passing yet", a.ConsulID())
		}})
	}
	for _, c := range checks {
		var last error
		for {
			for _, p := range []*proc.Process{a.Process(), a.Sidecar()} {
				if p != nil && p.Exited() {
					return fmt.Errorf("app %s did not become ready: %s", a.Name(), p.Describe())
				}
			}
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			last = c.probe(pctx)
			pcancel()
			if last == nil {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("app %s: %s not ready after %s: %v", a.Name(), c.what, g.opts.ReadyTimeout, last)
			case <-g.stopping:
				return fmt.Errorf("app %s: start abandoned", a.Name())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// sidecarIsOurs checks that the sidecar answering on the app's port is the one started for it:
// another process may have taken the port between choosing it and daprd binding it (then our
// daprd exits, and a health check alone would be answered by the stranger).
func sidecarIsOurs(ctx context.Context, a *App) error {
	if err := httpOK(ctx, a.DaprHTTP()+"/v1.0/healthz", nil); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.DaprHTTP()+"/v1.0/metadata", nil)
	if err != nil {
		return err
	}
	req.Header.Set("dapr-api-token", a.DaprAPIToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var md struct {
		ID string `json:"id"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&md) != nil || md.ID != a.Spec.ID {
		return fmt.Errorf("port %d is answered by another sidecar (status %d, app id %q)", a.HTTPPort, resp.StatusCode, md.ID)
	}
	return nil
}

func httpOK(ctx context.Context, url string, header http.Header) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return nil
}

// supervise watches an app and its sidecar: a process that dies is restarted per the app's
// policy, or the whole group fails.
func (g *Group) supervise(ctx context.Context, a *App, rc renderedConfig) {
	defer g.wg.Done()
	restarts := 0
	maxRestarts := a.Spec.MaxRestarts
	if maxRestarts == 0 {
		maxRestarts = 3
	}
	for {
		a.mu.Lock()
		app, sidecar := a.app, a.sidecar
		a.mu.Unlock()
		var appDone <-chan struct{}
		if app != nil {
			appDone = app.Done()
		}
		var died *proc.Process
		select {
		case <-g.stopping:
			return
		case <-appDone:
			died = app
		case <-sidecar.Done():
			died = sidecar
		}
		select {
		case <-g.stopping:
			return
		default:
		}
		fmt.Fprintf(g.opts.Output, "goplt: %s\n", died.Describe())
		if a.Spec.Restart == "never" || restarts >= maxRestarts {
			g.failed <- fmt.Errorf("%s died and restart policy %q allows no more restarts (%d made)", died.Name(), policy(a.Spec.Restart), restarts)
			return
		}
		restarts++
		backoff := time.Duration(1<<(restarts-1)) * time.Second
		fmt.Fprintf(g.opts.Output, "goplt: restarting %s in %s (restart %d of %d)\n", died.Name(), backoff, restarts, maxRestarts)
		select {
		case <-g.stopping:
			return
		case <-time.After(backoff):
		}
		var p *proc.Process
		var err error
		if died == app {
			p, err = g.spawnApp(a, rc)
		} else {
			p, err = g.spawnSidecar(a, rc.Path)
		}
		if err != nil {
			g.failed <- fmt.Errorf("restart %s: %w", died.Name(), err)
			return
		}
		a.mu.Lock()
		if died == app {
			a.app = p
		} else {
			a.sidecar = p
		}
		a.restarts++
		a.mu.Unlock()
	}
}

func policy(p string) string {
	if p == "" {
		return "on-failure"
	}
	return p
}

// Wait blocks until ctx ends (nil) or an app fails beyond its restart policy (the error).
func (g *Group) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-g.failed:
		return err
	}
}

// Stop stops every app and sidecar, dependents first, and waits for them to exit.
func (g *Group) Stop() {
	g.stopOnce.Do(func() { close(g.stopping) })
	for i := len(g.order) - 1; i >= 0; i-- {
		for _, a := range g.apps[g.order[i]] {
			a.stopProcesses()
			g.opts.Ports.Release(a.reserved()...)
		}
	}
	g.wg.Wait()
	if g.ownPorts {
		g.opts.Ports.Close()
	}
}
