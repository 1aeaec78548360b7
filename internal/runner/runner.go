// Package runner starts the apps of a run plan with their Dapr sidecars on loopback, in
// dependency order, each gated on the readiness of what it depends on; it prefixes and colours
// their logs, restarts or stops per policy when something dies (saying which and why), and
// stops everything cleanly.
package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

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
	// Lines, if not nil, also receives every output line of every app and sidecar, with the
	// app id and the instance's name (blog#2, blog#2.dapr for its sidecar); the developer
	// dashboard keeps the latest.
	Lines func(app, name, line string)
	// ReadyTimeout bounds the wait for one app to become ready; zero means 2 minutes.
	ReadyTimeout time.Duration
	// Only starts just these app ids (and what they depend on); empty means all.
	Only []string
	// Except names apps that run outside goplt (in a debugger, an IDE): only their sidecar is
	// started, one instance, counted ready once its outbound API is up, so dependents start
	// and reach the app when it comes up. (*Group).OutsideEnv gives what to start it with.
	Except []string
	// Ports reserves every app's and sidecar's ports; nil means a ports.Default() allocator
	// of the group's own, released by Stop.
	Ports *ports.Allocator
	// OTLPEndpoint (host:port of an OTLP/HTTP receiver, such as the developer dashboard)
	// makes every sidecar and app export its spans there, sampling new traces at
	// TraceSampling ("" samples every request).
	OTLPEndpoint  string
	TraceSampling string
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

	// outside: the app is started by the user (Options.Except); env is what it needs.
	outside bool
	env     []string

	mu       sync.Mutex
	app      *proc.Process
	sidecar  *proc.Process
	restarts int
	ready    chan struct{}
	reload   chan reloadRequest // Restart's requests to the instance's supervisor
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

// Outside says whether app id runs outside goplt (Options.Except): goplt runs its sidecar only.
func (g *Group) Outside(id string) bool {
	a := g.App(id)
	return a != nil && a.outside
}

// OutsideEnv returns the environment (KEY=value) an app run outside goplt (Options.Except)
// needs to join its sidecar: ports, tokens, database, policies; nil for any other app.
func (g *Group) OutsideEnv(id string) []string {
	if !g.Outside(id) {
		return nil
	}
	return slices.Clone(g.App(id).env)
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
		out:      newPrefixer(opts.Output, opts.Color, order, opts.Lines),
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
		outside := slices.Contains(opts.Except, id)
		if outside {
			spec.Replicas = 1 // one debugger, one instance
		}
		for i := range max(spec.Replicas, 1) {
			a := &App{Spec: spec, Instance: i + 1, DaprAPIToken: token(), AppAPIToken: token(), ready: make(chan struct{}), outside: outside,
				reload: make(chan reloadRequest)}
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
