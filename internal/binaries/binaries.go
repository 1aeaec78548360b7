// Package binaries finds or builds the third-party programs the local stack runs: daprd,
// Dapr's sentry and the consul agent, each pinned to one version.
//
// Lookup order for a tool: a binary of the right version on PATH (and, for daprd, in
// ~/.dapr/bin where `dapr init` puts it), then the per-user build cache keyed by version, then
// a build from the module proxy through the small Go module under tools/ that pins it.
package binaries

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/goplt/goplt/internal/envvar"
	"github.com/goplt/goplt/internal/sidecar"
)

// Tool describes one pinned third-party binary and how to build it.
type Tool struct {
	Name    string // executable name, e.g. "daprd"
	Version string // the pinned version, e.g. "1.16.5"
	// Variant tells builds of one version apart in the cache; empty for plain builds.
	Variant string
	// KeyFiles are source files (relative to the repository root) whose content is part of the
	// cache key: goplt's daprd is rebuilt when its generated component list changes.
	KeyFiles []string
	Module   string   // build module, relative to the repository root, e.g. "tools/dapr"
	Package  string   // Go package path of the command, or a path relative to Module ("./daprd")
	Tags     []string // build tags
	LDFlags  string   // extra -ldflags (version stamping)
	// VersionArgs prints the version; the output must contain Version (or one Accepts allows).
	// Without them, binaries on PATH are not considered.
	VersionArgs []string
	// Accepts is a semver constraint (">= 1.14, < 2") a binary on PATH may satisfy instead of
	// reporting exactly Version: a packaged install saves a build. Builds are always Version.
	Accepts string
	// ExtraDirs are searched after PATH (for example ~/.dapr/bin).
	ExtraDirs []string
	// ColdBuild is how long a build without a warm Go cache takes on a 2-core machine.
	ColdBuild time.Duration
	// Static builds without cgo and without a build id: a binary that runs on any Linux (an
	// image with no libc) and is the same bytes from every build of one version.
	Static bool
}

const (
	// DaprVersion is the Dapr runtime (and sentry) version goplt runs.
	DaprVersion = sidecar.DaprVersion
	// ConsulVersion is the consul agent version goplt runs.
	ConsulVersion = "1.22.0"
)

// Daprd is goplt's Dapr sidecar (tools/dapr/daprd): Dapr's runtime at DaprVersion with only
// the component types the compiled manifests reference (its generated components_gen.go). A daprd on PATH is never taken for it (a stock one
// reports the same version); set GOPLT_DAPRD to run another build (see SidecarPath).
func Daprd() Tool {
	return Tool{
		Name: "daprd", Version: DaprVersion, Variant: "goplt", Module: "tools/dapr",
		Package: "./daprd", Static: true, // also the cluster's sidecar image (goplt images)
		KeyFiles:  []string{"tools/dapr/daprd/components_gen.go", "tools/dapr/daprd/main.go"},
		LDFlags:   "-X github.com/dapr/dapr/pkg/buildinfo.version=" + DaprVersion,
		ColdBuild: 6 * time.Minute,
	}
}

// StockDaprd is Dapr's own daprd with every component (-tags allcomponents, which the Consul
// resolver needs), as `dapr init` installs it. goplt does not need it; benchmarks compare
// against it, and GOPLT_DAPRD can point the stack at it to show the same files work there.
func StockDaprd() Tool {
	home, _ := os.UserHomeDir()
	return Tool{
		Name: "daprd", Version: DaprVersion, Variant: "allcomponents", Module: "tools/dapr",
		Package:     "github.com/dapr/dapr/cmd/daprd",
		Tags:        []string{"allcomponents"},
		LDFlags:     "-X github.com/dapr/dapr/pkg/buildinfo.version=" + DaprVersion,
		VersionArgs: []string{"--version"},
		ExtraDirs:   []string{filepath.Join(home, ".dapr", "bin")},
		ColdBuild:   25 * time.Minute,
	}
}

// SidecarEnv names the environment variable that replaces goplt's daprd with another binary
// (for example the stock daprd of `dapr init`: GOPLT_DAPRD=~/.dapr/bin/daprd).
const SidecarEnv = envvar.Daprd

// SidecarPath returns the daprd to run: $GOPLT_DAPRD when set (it must be executable), else
// goplt's build from find (Resolver.Find or Resolver.Ensure with Daprd()).
func SidecarPath(ctx context.Context, find func(context.Context, Tool) (string, error)) (string, error) {
	if p := os.Getenv(SidecarEnv); p != "" {
		if !isExecutable(p) {
			return "", fmt.Errorf("%s=%s is not an executable file", SidecarEnv, p)
		}
		return p, nil
	}
	return find(ctx, Daprd())
}

// Sentry is Dapr's certificate authority, which gives sidecars mTLS identities.
// It has no version flag, so only the build cache (keyed by version) can vouch for one.
func Sentry() Tool {
	return Tool{
		Name: "sentry", Version: DaprVersion, Module: "tools/dapr",
		Package:   "github.com/dapr/dapr/cmd/sentry",
		LDFlags:   "-X github.com/dapr/dapr/pkg/buildinfo.version=" + DaprVersion,
		ColdBuild: 4 * time.Minute,
	}
}

// Consul is the HashiCorp Consul agent used for name resolution.
func Consul() Tool {
	return Tool{
		Name: "consul", Version: ConsulVersion, Module: "tools/consul",
		Package:     "github.com/hashicorp/consul",
		VersionArgs: []string{"version"},
		// A packaged consul (HashiCorp's apt or yum repository, Homebrew) saves the 8-15 minute
		// build. 1.14 added -grpc-tls-port, the newest flag the local stack passes; the API
		// the sidecars' resolver and goplt use is stable across 1.x.
		Accepts:   ">= 1.14.0, < 2.0.0",
		ColdBuild: 15 * time.Minute,
	}
}

// All returns every pinned tool goplt runs, in the order `goplt deps` builds them.
func All() []Tool { return []Tool{Daprd(), Sentry(), Consul()} }

// Versions of the Kubernetes control plane the tests run (internal/kubetest).
const (
	KubernetesVersion = "1.35.4"
	EtcdVersion       = "3.6.16"
	KwokVersion       = "0.8.0"
	CoreDNSVersion    = "1.15.0"
)

// kubeTool is a command of k8s.io/kubernetes at KubernetesVersion, built by tools/kubernetes
// and stamped with its version (a build from the module proxy would say v0.0.0-master).
func kubeTool(name string, cold time.Duration) Tool {
	return Tool{
		Name: name, Version: KubernetesVersion, Module: "tools/kubernetes",
		Package:   "k8s.io/kubernetes/cmd/" + name,
		LDFlags:   "-X k8s.io/component-base/version.gitVersion=v" + KubernetesVersion,
		ColdBuild: cold,
	}
}

// Kubernetes returns the tools of the tests' Kubernetes cluster: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kwok (fake nodes), kubectl (the client users
// apply goplt's kustomizations with), and the kubelet, kube-proxy and CoreDNS of its real node
// (on containerd). `goplt deps --kubernetes` builds them; the apiserver, the kubelet and
// CoreDNS take about 4.5 minutes each built alone on 2 cores with a cold Go cache. All nine
// built side by side with a cold cache compile their shared k8s.io packages once per build:
// after 15 minutes only etcd had finished (2026-12-04), so bounding EnsureAll's parallelism is
// worth measuring.
func Kubernetes() []Tool {
	return []Tool{
		{Name: "etcd", Version: EtcdVersion, Module: "tools/etcd", Package: "go.etcd.io/etcd/server/v3", ColdBuild: time.Minute},
		kubeTool("kube-apiserver", 4*time.Minute+30*time.Second),
		kubeTool("kube-controller-manager", time.Minute),
		kubeTool("kube-scheduler", 15*time.Second),
		kubeTool("kubectl", time.Minute),
		kubeTool("kubelet", 4*time.Minute),  // the real node's agent (kubetest.Options.Kubelet)
		kubeTool("kube-proxy", time.Minute), // the real node's Service addresses
		{Name: "coredns", Version: CoreDNSVersion, Module: "tools/coredns", Package: "github.com/coredns/coredns", ColdBuild: 4 * time.Minute},
		{Name: "kwok", Version: KwokVersion, Module: "tools/kwok", Package: "sigs.k8s.io/kwok/cmd/kwok", ColdBuild: 90 * time.Second},
	}
}

// OTelCollectorVersion is the OpenTelemetry Collector release tools/otelcol pins.
const OTelCollectorVersion = "0.161.0"

// OTelCollector is the OpenTelemetry Collector the telemetry tests export to (tools/otelcol:
// OTLP in, a JSON file out). Never taken from PATH: a collector built elsewhere may lack the
// file exporter. `goplt deps --otelcol` builds it; cold, about 90 s.
func OTelCollector() Tool {
	return Tool{Name: "otelcol", Version: OTelCollectorVersion, Module: "tools/otelcol", Package: ".", ColdBuild: 90 * time.Second}
}

// ErrNotFound means no usable binary exists and none was built.
var ErrNotFound = errors.New("not found")

// Resolver finds and builds tools.
type Resolver struct {
	// CacheDir holds built binaries as <name>-<version>. Empty means DefaultCacheDir().
	CacheDir string
	// RepoRoot is the goplt repository root, where tools/ lives (needed only to build).
	RepoRoot string
	// Progress receives build progress lines (nil discards).
	Progress io.Writer
	// SkipPath ignores PATH and ExtraDirs (used by tests that want the cached build).
	SkipPath bool
}

// DefaultCacheDir is $GOPLT_CACHE/bin if set, else the user cache folder's goplt/bin.
func DefaultCacheDir() string {
	if d := os.Getenv(envvar.Cache); d != "" {
		return filepath.Join(d, "bin")
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "goplt", "bin")
	}
	return filepath.Join(os.TempDir(), "goplt-cache", "bin")
}

func (r Resolver) cacheDir() string {
	if r.CacheDir != "" {
		return r.CacheDir
	}
	return DefaultCacheDir()
}

// CachePath is where a build of t is kept: <name>-<version>[-<variant>][-<digest of KeyFiles>].
func (r Resolver) CachePath(t Tool) string {
	return filepath.Join(r.cacheDir(), r.key(t))
}

func (r Resolver) key(t Tool) string {
	k := t.Name + "-" + t.Version
	if t.Variant != "" {
		k += "-" + t.Variant
	}
	if t.Static {
		k += "-static"
	}
	if len(t.KeyFiles) > 0 {
		h := sha256.New()
		for _, f := range t.KeyFiles {
			b, err := os.ReadFile(filepath.Join(r.RepoRoot, f))
			if err != nil {
				// No such build can exist; Find reports it missing and a build says why.
				b = []byte("missing " + f)
			}
			fmt.Fprintf(h, "%s %d\n", f, len(b))
			h.Write(b)
		}
		k += "-" + hex.EncodeToString(h.Sum(nil))[:10]
	}
	return k
}

// Find returns the path of a usable binary for t without building. It returns an error
// wrapping ErrNotFound when there is none.
func (r Resolver) Find(ctx context.Context, t Tool) (string, error) {
	if !r.SkipPath && len(t.VersionArgs) > 0 {
		var candidates []string
		if p, err := exec.LookPath(t.Name); err == nil {
			candidates = append(candidates, p)
		}
		for _, d := range t.ExtraDirs {
			candidates = append(candidates, filepath.Join(d, t.Name))
		}
		for _, c := range candidates {
			if isExecutable(c) && hasVersion(ctx, c, t) {
				return c, nil
			}
		}
	}
	if p := r.CachePath(t); isExecutable(p) {
		return p, nil
	}
	return "", fmt.Errorf("%s %s: %w (not on PATH at that version, not in %s)", t.Name, t.Version, ErrNotFound, r.cacheDir())
}

// Ensure returns a usable binary for t, building it into the cache if needed.
func (r Resolver) Ensure(ctx context.Context, t Tool) (string, error) {
	if p, err := r.Find(ctx, t); err == nil {
		return p, nil
	}
	if err := os.MkdirAll(r.cacheDir(), 0o755); err != nil {
		return "", fmt.Errorf("create build cache: %w", err)
	}
	// One build per tool at a time, across processes: a second caller waits, then finds it.
	unlock, err := lockFile(filepath.Join(r.cacheDir(), "."+r.key(t)+".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if p := r.CachePath(t); isExecutable(p) {
		return p, nil
	}
	if err := r.build(ctx, t); err != nil {
		return "", err
	}
	return r.CachePath(t), nil
}

func (r Resolver) build(ctx context.Context, t Tool) error {
	if r.RepoRoot == "" {
		return fmt.Errorf("build %s: the goplt repository root is unknown (run goplt from inside the repository)", t.Name)
	}
	modDir := filepath.Join(r.RepoRoot, t.Module)
	if _, err := os.Stat(filepath.Join(modDir, "go.mod")); err != nil {
		return fmt.Errorf("build %s: build module %s is missing: %w", t.Name, modDir, err)
	}
	out := r.Progress
	if out == nil {
		out = io.Discard
	}
	variant := ""
	if t.Variant != "" {
		variant = " (" + t.Variant + ")"
	}
	fmt.Fprintf(out, "building %s %s%s from the Go module proxy (first time only; about %s cold on 2 cores)\n",
		t.Name, t.Version, variant, t.ColdBuild.Round(time.Minute))
	fmt.Fprintf(out, "  %s: resolving and downloading its modules...\n", t.Name)
	total := countPackages(ctx, modDir, t)
	fmt.Fprintf(out, "  %s: compiling %d packages\n", t.Name, total)

	tmp := r.CachePath(t) + ".tmp"
	ldflags := "-s -w " + t.LDFlags
	if t.Static {
		ldflags += " -buildid="
	}
	args := []string{"build", "-v", "-trimpath", "-ldflags", strings.TrimSpace(ldflags), "-o", tmp}
	if len(t.Tags) > 0 {
		args = append(args, "-tags", strings.Join(t.Tags, ","))
	}
	args = append(args, t.Package)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = modDir
	if t.Static {
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = cmd.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("build %s: start go: %w", t.Name, err)
	}
	var compiled atomic.Int64
	var last atomic.Value
	last.Store("")
	var errLines []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			// With -v, go prints each package path as it compiles it; anything else is an error.
			if strings.Contains(line, " ") || strings.HasPrefix(line, "#") {
				errLines = append(errLines, line)
				continue
			}
			compiled.Add(1)
			last.Store(line)
		}
	}()
	tick := time.NewTicker(20 * time.Second)
	defer tick.Stop()
	wait := make(chan error, 1)
	go func() { <-done; wait <- cmd.Wait() }()
	for {
		select {
		case <-tick.C:
			fmt.Fprintf(out, "  %s: %s elapsed, %d/%d packages compiled (last: %s)\n",
				t.Name, time.Since(start).Round(time.Second), compiled.Load(), total, last.Load())
		case err := <-wait:
			if err != nil {
				_ = os.Remove(tmp)
				tailStart := max(0, len(errLines)-20)
				return fmt.Errorf("build %s %s failed after %s: %w\n  %s\n  (build module: %s; fix the error above, or put a %s %s binary on PATH)",
					t.Name, t.Version, time.Since(start).Round(time.Second), err,
					strings.Join(errLines[tailStart:], "\n  "), modDir, t.Name, t.Version)
			}
			if err := os.Rename(tmp, r.CachePath(t)); err != nil {
				return fmt.Errorf("build %s: %w", t.Name, err)
			}
			fmt.Fprintf(out, "built %s %s in %s -> %s\n", t.Name, t.Version, time.Since(start).Round(time.Second), r.CachePath(t))
			return nil
		}
	}
}

// countPackages estimates the build's size for the progress display (0 when unknown).
func countPackages(ctx context.Context, modDir string, t Tool) int {
	args := []string{"list", "-deps"}
	if len(t.Tags) > 0 {
		args = append(args, "-tags", strings.Join(t.Tags, ","))
	}
	cmd := exec.CommandContext(ctx, "go", append(args, t.Package)...)
	cmd.Dir = modDir
	out, err := cmd.Output()
	if err != nil {
		return 0
	}
	return strings.Count(string(out), "\n")
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// hasVersion runs the binary's version command and checks that it names t.Version, or a
// version t.Accepts allows.
func hasVersion(ctx context.Context, path string, t Tool) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, t.VersionArgs...).CombinedOutput()
	if err != nil {
		return false
	}
	var accepts *semver.Constraints
	if t.Accepts != "" {
		if accepts, err = semver.NewConstraint(t.Accepts); err != nil {
			return false
		}
	}
	for _, f := range strings.Fields(string(out)) {
		if strings.TrimPrefix(f, "v") == t.Version {
			return true
		}
		// Only whole x.y.z tokens count ("v1.21.4"): "Protocol 2" is no version.
		if v, err := semver.StrictNewVersion(strings.TrimPrefix(f, "v")); err == nil && accepts != nil && accepts.Check(v) {
			return true
		}
	}
	return false
}

// lockFile takes an exclusive advisory lock, waiting for it; the kernel releases it if the
// process dies, so no stale lock can remain.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// EnsureAll returns a usable binary for each tool, in order, building the missing ones side by
// side: on 2 cores one build's linking and downloading leave room for another's compiling, so
// together they finish well before one after the other would. Progress lines of concurrent
// builds are written whole, each prefixed with its tool.
func (r Resolver) EnsureAll(ctx context.Context, tools []Tool) ([]string, error) {
	if r.Progress != nil {
		r.Progress = &lockedWriter{w: r.Progress}
	}
	paths := make([]string, len(tools))
	errs := make([]error, len(tools))
	var wg sync.WaitGroup
	for i, t := range tools {
		if p, err := r.Find(ctx, t); err == nil {
			paths[i] = p
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			paths[i], errs[i] = r.Ensure(ctx, t)
		}()
	}
	wg.Wait()
	return paths, errors.Join(errs...)
}

// lockedWriter serialises writes from concurrent builds.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
