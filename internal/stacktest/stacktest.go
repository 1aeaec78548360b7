// Package stacktest starts the real local stack (PostgreSQL, the Kafka-protocol broker,
// Consul, Sentry) on free loopback ports in a temporary folder, and runs apps with real daprd
// sidecars on it, for integration tests. Start it once per package, in TestMain.
//
// The third-party binaries must already be built (`make test` runs `goplt deps` first); the
// harness never builds them, since a test would time out doing so.
package stacktest

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/goplt/goplt/internal/binaries"
	"github.com/goplt/goplt/internal/eventsig"
	"github.com/goplt/goplt/internal/infra"
	"github.com/goplt/goplt/internal/ports"
	"github.com/goplt/goplt/internal/repo"
	"github.com/goplt/goplt/internal/runner"
	"github.com/goplt/goplt/internal/runplan"
)

// Stack is a running local stack for tests.
type Stack struct {
	Root  string // repository root
	Home  string // temporary home of the stack
	Daprd string
	Infra *infra.Stack
	// Ports reserves the stack's ports and those of the apps it runs.
	Ports *ports.Allocator
	// Output receives the apps' and sidecars' logs (os.Stderr when GOPLT_TEST_LOGS is set).
	Output io.Writer

	mu      sync.Mutex
	signers map[string]*eventsig.Signer // SignedEvent's, by app
}

// Endpoints of the stack.
func (s *Stack) Endpoints() infra.Endpoints { return s.Infra.Endpoints() }

// Start starts the stack. Close it when done.
func Start(ctx context.Context) (*Stack, error) {
	root, err := repo.RootFromWd()
	if err != nil {
		return nil, err
	}
	r := binaries.Resolver{RepoRoot: root}
	daprd, err := binaries.SidecarPath(ctx, r.Find)
	if err != nil {
		return nil, fmt.Errorf("%w: run `make deps` (or `go run ./tools/goplt deps`) to build it first", err)
	}
	bins := map[string]string{}
	for _, t := range []binaries.Tool{binaries.Sentry(), binaries.Consul()} {
		p, err := r.Find(ctx, t)
		if err != nil {
			return nil, fmt.Errorf("%w: run `make deps` (or `go run ./tools/goplt deps`) to build it first", err)
		}
		bins[t.Name] = p
	}
	// PostgreSQL may run as another user (when tests run as root): the folder must be
	// reachable by it, which os.MkdirTemp's 0700 is not.
	home, err := os.MkdirTemp("", "goplt-stack-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(home, 0o755); err != nil {
		return nil, err
	}
	s := &Stack{Root: root, Home: home, Daprd: daprd, Output: io.Discard}
	if os.Getenv("GOPLT_TEST_LOGS") != "" {
		s.Output = os.Stderr
	}
	self := filepath.Join(home, "goplt")
	build := exec.CommandContext(ctx, "go", "build", "-o", self, "./tools/goplt")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		s.cleanup()
		return nil, fmt.Errorf("build goplt for the broker: %w\n%s", err, out)
	}
	if s.Ports, err = ports.Default(); err != nil {
		s.cleanup()
		return nil, err
	}
	ps, err := infra.FreePorts(s.Ports, 3)
	if err != nil {
		s.cleanup()
		return nil, err
	}
	s.Infra, err = infra.Up(ctx, infra.Config{
		Home: home, Ports: ps, Consul: bins["consul"], Sentry: bins["sentry"], Self: self,
		Progress: s.Output,
	})
	if err != nil {
		s.cleanup()
		return nil, err
	}
	return s, nil
}

// Run starts the apps of plan (paths relative to the repository root) on the stack.
func (s *Stack) Run(ctx context.Context, plan *runplan.Plan) (*runner.Group, error) {
	return s.RunTraced(ctx, plan, "", "")
}

// RunTraced is Run with every sidecar and app exporting its spans to an OTLP/HTTP endpoint
// (host:port; "" for none), sampling new traces at rate ("" for every request).
func (s *Stack) RunTraced(ctx context.Context, plan *runplan.Plan, otlp, rate string) (*runner.Group, error) {
	return s.RunWith(ctx, plan, func(o *runner.Options) { o.OTLPEndpoint, o.TraceSampling = otlp, rate })
}

// RunWith is Run with the runner's options adjusted by set (nil: none).
func (s *Stack) RunWith(ctx context.Context, plan *runplan.Plan, set func(*runner.Options)) (*runner.Group, error) {
	opts := runner.Options{
		Root: s.Root, Plan: plan, Infra: s.Endpoints(), Daprd: s.Daprd,
		WorkDir: filepath.Join(s.Home, "apps"), Output: s.Output, Ports: s.Ports,
	}
	if set != nil {
		set(&opts)
	}
	return runner.Start(ctx, opts)
}

// Close stops the stack and removes its folder.
func (s *Stack) Close() {
	if s.Infra != nil {
		s.Infra.Stop()
	}
	s.cleanup()
}

func (s *Stack) cleanup() {
	if s.Ports != nil {
		s.Ports.Close()
	}
	_ = os.RemoveAll(s.Home)
}

// Main runs a test package against one shared stack: it starts the stack (unless -short),
// calls setup with it (to keep it in a package variable and start apps; the returned cleanup,
// if any, runs after the tests), runs the tests, stops everything and exits.
func Main(m *testing.M, setup func(ctx context.Context, s *Stack) (cleanup func(), err error)) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	s, err := Start(ctx)
	if err != nil {
		cancel()
		fmt.Fprintln(os.Stderr, "start stack:", err)
		os.Exit(1)
	}
	cleanup, err := setup(ctx, s)
	cancel()
	if err != nil {
		s.Close()
		fmt.Fprintln(os.Stderr, "set up the stack:", err)
		os.Exit(1)
	}
	code := m.Run()
	if cleanup != nil {
		cleanup()
	}
	s.Close()
	os.Exit(code)
}

// LocalPlan loads the generated local run plan (deploy/local/runplan.yaml) and keeps only the
// apps named, with their dependencies narrowed to the kept apps. env, if not nil, adds
// environment per app id.
func (s *Stack) LocalPlan(env map[string]map[string]string, keep ...string) (*runplan.Plan, error) {
	plan, err := runplan.Load(filepath.Join(s.Root, "deploy", "local", "runplan.yaml"))
	if err != nil {
		return nil, err
	}
	var apps []runplan.App
	for _, a := range plan.Apps {
		if !slices.Contains(keep, a.ID) {
			continue
		}
		a.DependsOn = slices.DeleteFunc(a.DependsOn, func(d string) bool { return !slices.Contains(keep, d) })
		for k, v := range env[a.ID] {
			if a.Env == nil {
				a.Env = map[string]string{}
			}
			a.Env[k] = v
		}
		apps = append(apps, a)
	}
	if len(apps) != len(keep) {
		return nil, fmt.Errorf("the local run plan lacks some of %v (run make generate)", keep)
	}
	plan.Apps = apps
	return plan, nil
}
