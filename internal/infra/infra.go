// Package infra runs the local stack that goplt's apps and sidecars need, as child processes on
// loopback: a private PostgreSQL cluster, a Kafka-protocol broker (kfake), a Consul dev agent
// and Dapr's Sentry (the CA behind mTLS between sidecars).
//
// Everything lives under one home folder: data/ (kept between runs), logs/, run/ (sockets) and
// infra.json, the state that `status` and `down` read. The stack either belongs to the process
// that started it (attached: it dies with its parent) or is detached (`goplt infra up`) and
// stopped later by `goplt infra down`.
package infra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/goplt/goplt/internal/kafkabroker"
	"github.com/goplt/goplt/internal/localsecrets"
	"github.com/goplt/goplt/internal/platformsecrets"
	"github.com/goplt/goplt/internal/proc"
)

// Config says where the stack lives, which ports it uses and which binaries run it.
type Config struct {
	Home  string // folder for data, logs, sockets and state
	Ports Ports
	// Binaries.
	Consul string // consul agent
	Sentry string // Dapr sentry
	Self   string // the goplt executable, which runs the Kafka broker (`goplt infra kafka-broker`)
	// PostgresBin is the folder holding postgres and initdb; empty means PostgresBinDir().
	PostgresBin string
	// Detach lets the stack outlive this process (goplt infra up).
	Detach bool
	// Progress receives one line per step (nil discards).
	Progress io.Writer
	// ReadyTimeout bounds the wait for each service; zero means 90 s.
	ReadyTimeout time.Duration
}

// TrustDomain is the trust domain of the local Sentry CA: daprd's default control-plane
// trust domain, so sidecars the Dapr CLI starts (it passes none) trust this Sentry as goplt's
// own do.
const TrustDomain = "localhost"

// Endpoints are the addresses apps and sidecars use to reach the stack.
type Endpoints struct {
	PostgresURL      string   `json:"postgresUrl"`      // database "goplt"; each app uses its own schema
	KafkaBrokers     []string `json:"kafkaBrokers"`     // host:port of each broker
	ConsulHTTP       string   `json:"consulHttp"`       // host:port of the agent's HTTP API
	SentryAddress    string   `json:"sentryAddress"`    // host:port of Sentry's gRPC API
	TrustAnchorsFile string   `json:"trustAnchorsFile"` // PEM of the Sentry root CA
	TrustDomain      string   `json:"trustDomain"`
	// SecretsFile backs the local secret store (secretstores.local.file).
	SecretsFile string `json:"secretsFile"`
	// VolumesDir holds the apps' declared volumes (<app id>/<volume>): outside PostgreSQL's
	// data, so what an app keeps there survives whatever happens to the database.
	VolumesDir string `json:"volumesDir"`
}

// KafkaAdmin returns the broker superuser's credentials (goplt's own: topics, users, ACLs,
// and tests that read or write topics directly).
func (e Endpoints) KafkaAdmin() (kafkabroker.Credentials, error) {
	return BrokerAdmin(e.SecretsFile)
}

// BrokerAdmin reads the broker superuser's credentials from the secrets file.
func BrokerAdmin(secretsFile string) (kafkabroker.Credentials, error) {
	f, err := localsecrets.Read(secretsFile)
	if err != nil {
		return kafkabroker.Credentials{}, err
	}
	s := f[platformsecrets.BrokerAdmin]
	c := kafkabroker.Credentials{User: s[platformsecrets.BrokerAdminUser], Password: s[platformsecrets.BrokerAdminPassword]}
	if c.User == "" || c.Password == "" {
		return c, fmt.Errorf("%s has no %s secret (goplt infra up creates it)", secretsFile, platformsecrets.BrokerAdmin)
	}
	return c, nil
}

// TrustAnchors reads the CA certificate that sidecars must trust.
func (e Endpoints) TrustAnchors() (string, error) {
	b, err := os.ReadFile(e.TrustAnchorsFile)
	if err != nil {
		return "", fmt.Errorf("read sentry trust anchors: %w", err)
	}
	return string(b), nil
}

// ServiceState records one running service.
type ServiceState struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
	Pid  int    `json:"pid"`
	Log  string `json:"log"`
}

// State is what infra.json holds.
type State struct {
	Ports     Ports          `json:"ports"`
	Endpoints Endpoints      `json:"endpoints"`
	Services  []ServiceState `json:"services"`
	Detached  bool           `json:"detached"`
	StartedAt time.Time      `json:"startedAt"`
	// Owner is the pid of the goplt process an attached stack belongs to.
	Owner int `json:"owner"`
}

// Stack is a started (or reused) local stack.
type Stack struct {
	State State
	home  string
	procs []*proc.Process
	svcs  []service // what procs run, for Restart
	cfg   Config
	// reused is true when Up found a healthy stack already running; Stop leaves it alone.
	reused bool
}

// Reused reports whether Up found the stack already running (so Stop will not stop it).
func (s *Stack) Reused() bool { return s.reused }

// Endpoints of the stack.
func (s *Stack) Endpoints() Endpoints { return s.State.Endpoints }

// Processes returns the processes this Stack started (empty when reused or detached).
func (s *Stack) Processes() []*proc.Process { return s.procs }

func statePath(home string) string { return filepath.Join(home, "infra.json") }

// LoadState reads the state of the stack under home; os.ErrNotExist when none was started.
func LoadState(home string) (*State, error) {
	b, err := os.ReadFile(statePath(home))
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s is corrupt (%v): run `goplt infra down` to clear it", statePath(home), err)
	}
	if st.Endpoints.VolumesDir == "" {
		st.Endpoints.VolumesDir = VolumesDir(home) // state written by an older goplt lacks it
	}
	return &st, nil
}

func writeState(home string, st State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := statePath(home) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write infra state: %w", err)
	}
	return os.Rename(tmp, statePath(home))
}

// Up starts the stack, or reuses it when a healthy one is already running under cfg.Home.
func Up(ctx context.Context, cfg Config) (*Stack, error) {
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 90 * time.Second
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if err := cfg.Ports.Validate(); err != nil {
		return nil, err
	}
	for _, d := range []string{cfg.Home, filepath.Join(cfg.Home, "data"), filepath.Join(cfg.Home, "logs"), filepath.Join(cfg.Home, "run")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	unlock, err := lockHome(cfg.Home)
	if err != nil {
		return nil, err
	}
	defer unlock()

	if st, err := LoadState(cfg.Home); err == nil {
		if healthy(ctx, st) {
			fmt.Fprintf(cfg.Progress, "infra: already running (started %s)\n", st.StartedAt.Format(time.RFC3339))
			st.Endpoints.SecretsFile = SecretsFile(cfg.Home) // state written by an older goplt lacks it
			if err := ensureSecrets(cfg.Home, cfg.Progress); err != nil {
				return nil, err
			}
			return &Stack{State: *st, home: cfg.Home, reused: true}, nil
		}
		// Left over from a crash or a partial stop: clear it before starting afresh.
		stopRecorded(st)
		_ = os.Remove(statePath(cfg.Home))
	}

	for _, u := range cfg.Ports.uses() {
		if err := CheckPortFree(u.what, u.port); err != nil {
			return nil, err
		}
	}

	// The broker reads its superuser's credentials from the secrets file at start.
	if err := ensureSecrets(cfg.Home, cfg.Progress); err != nil {
		return nil, err
	}
	svcs, err := services(cfg)
	if err != nil {
		return nil, err
	}
	st := State{Ports: cfg.Ports, Detached: cfg.Detach, StartedAt: time.Now().UTC()}
	if !cfg.Detach {
		st.Owner = os.Getpid()
	}
	stack := &Stack{home: cfg.Home, svcs: svcs, cfg: cfg}
	fail := func(err error) (*Stack, error) {
		for _, p := range stack.procs {
			p.Stop(10 * time.Second)
		}
		return nil, err
	}
	for _, s := range svcs {
		if s.prepare != nil {
			fmt.Fprintf(cfg.Progress, "infra: preparing %s\n", s.name)
			if err := s.prepare(ctx); err != nil {
				return fail(fmt.Errorf("%s: %w", s.name, err))
			}
		}
		spec := s.spec
		spec.Name = s.name
		spec.Detach = cfg.Detach
		spec.LogFile = filepath.Join(cfg.Home, "logs", s.name+".log")
		p, err := proc.Start(spec)
		if err != nil {
			return fail(err)
		}
		stack.procs = append(stack.procs, p)
		st.Services = append(st.Services, ServiceState{Name: s.name, Addr: s.addr, Pid: p.Pid(), Log: spec.LogFile})
	}

	// Wait for all in parallel; the first failure names the service and quotes its log.
	var wg sync.WaitGroup
	errs := make([]error, len(svcs))
	for i, s := range svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = waitReady(ctx, s, stack.procs[i], cfg.ReadyTimeout)
			if errs[i] == nil {
				fmt.Fprintf(cfg.Progress, "infra: %-8s ready on %s (pid %d)\n", s.name, s.addr, stack.procs[i].Pid())
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fail(err)
	}
	st.Endpoints = endpoints(cfg)
	if err := writeState(cfg.Home, st); err != nil {
		return fail(err)
	}
	stack.State = st
	return stack, nil
}

// ensureSecrets creates the local secrets the core services need, announcing the bootstrap
// administrator's password once.
func ensureSecrets(home string, progress io.Writer) error {
	path := SecretsFile(home)
	created, err := localsecrets.Ensure(path, time.Now())
	if err != nil {
		return fmt.Errorf("local secrets: %w", err)
	}
	if created.AdminPassword != "" {
		fmt.Fprintf(progress, "infra: created the bootstrap administrator's secret: %s / %s (shown once; kept in %s)\n",
			created.AdminEmail, created.AdminPassword, path)
	}
	return nil
}

func waitReady(ctx context.Context, s service, p *proc.Process, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if p.Exited() {
			return fmt.Errorf("%s exited before it was ready: %s%s", s.name, p.Describe(), s.hint)
		}
		probeCtx, probeCancel := context.WithTimeout(ctx, 2*time.Second)
		last = s.ready(probeCtx)
		probeCancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %v; %s%s", s.name, timeout, last, p.Describe(), s.hint)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Process returns the running process of a service this Stack started ("postgres", "kafka",
// "consul", "sentry"), or nil.
func (s *Stack) Process(name string) *proc.Process {
	for i, svc := range s.svcs {
		if svc.name == name && i < len(s.procs) {
			return s.procs[i]
		}
	}
	return nil
}

// Restart stops a service this Stack started (gracefully, with its stop signal, then its
// grace period), leaves it down for down, and starts it again with the same data and ports,
// returning once it is ready.
func (s *Stack) Restart(ctx context.Context, name string, down time.Duration) error {
	for i, svc := range s.svcs {
		if svc.name != name || i >= len(s.procs) {
			continue
		}
		s.procs[i].Stop(15 * time.Second)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(down):
		}
		spec := svc.spec
		spec.Name = svc.name
		spec.LogFile = filepath.Join(s.home, "logs", svc.name+".log")
		p, err := proc.Start(spec)
		if err != nil {
			return fmt.Errorf("restart %s: %w", name, err)
		}
		s.procs[i] = p
		s.State.Services[i].Pid = p.Pid()
		if err := writeState(s.home, s.State); err != nil {
			return err
		}
		return waitReady(ctx, svc, p, s.cfg.ReadyTimeout)
	}
	return fmt.Errorf("restart %s: not a service this stack started", name)
}

// Stop stops the services this Stack started and removes the state. A reused stack is left
// running: it belongs to whoever started it.
func (s *Stack) Stop() {
	if s.reused {
		return
	}
	// Reverse order: sentry and consul before the data stores.
	for i := len(s.procs) - 1; i >= 0; i-- {
		s.procs[i].Stop(15 * time.Second)
	}
	_ = os.Remove(statePath(s.home))
}

// Down stops the stack recorded under home, whoever started it. It is not an error when none
// is running.
func Down(ctx context.Context, home string, progress io.Writer) error {
	if progress == nil {
		progress = io.Discard
	}
	unlock, err := lockHome(home)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := LoadState(home)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintln(progress, "infra: not running")
		return nil
	}
	if err != nil {
		_ = os.Remove(statePath(home))
		return err
	}
	stopRecorded(st)
	for _, s := range st.Services {
		fmt.Fprintf(progress, "infra: stopped %s (pid %d)\n", s.Name, s.Pid)
	}
	return os.Remove(statePath(home))
}

func stopRecorded(st *State) {
	for i := len(st.Services) - 1; i >= 0; i-- {
		s := st.Services[i]
		sig := syscall.SIGTERM
		if s.Name == "postgres" {
			sig = syscall.SIGINT // "fast" shutdown: SIGTERM would wait for clients to leave
		}
		proc.StopPid(s.Pid, sig, 15*time.Second)
	}
}

// ServiceStatus is one line of `goplt infra status`.
type ServiceStatus struct {
	Name    string `json:"name"`
	Addr    string `json:"addr"`
	Pid     int    `json:"pid"`
	Running bool   `json:"running"`
	Healthy bool   `json:"healthy"`
	Detail  string `json:"detail,omitempty"`
	Log     string `json:"log"`
}

// Status probes each recorded service. It returns os.ErrNotExist when no stack was started.
func Status(ctx context.Context, home string) ([]ServiceStatus, *State, error) {
	st, err := LoadState(home)
	if err != nil {
		return nil, nil, err
	}
	probes := probesFor(*st)
	out := make([]ServiceStatus, 0, len(st.Services))
	for _, s := range st.Services {
		ss := ServiceStatus{Name: s.Name, Addr: s.Addr, Pid: s.Pid, Log: s.Log, Running: proc.Alive(s.Pid)}
		if ss.Running {
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			if probe, ok := probes[s.Name]; ok {
				if err := probe(pctx); err != nil {
					ss.Detail = err.Error()
				} else {
					ss.Healthy = true
				}
			}
			cancel()
		} else {
			ss.Detail = "process not running"
		}
		out = append(out, ss)
	}
	return out, st, nil
}

func healthy(ctx context.Context, st *State) bool {
	if len(st.Services) == 0 {
		return false
	}
	if !st.Detached && st.Owner != 0 && !proc.Alive(st.Owner) {
		return false
	}
	probes := probesFor(*st)
	for _, s := range st.Services {
		if !proc.Alive(s.Pid) {
			return false
		}
		probe, ok := probes[s.Name]
		if !ok {
			return false
		}
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := probe(pctx)
		cancel()
		if err != nil {
			return false
		}
	}
	return true
}

// lockHome serialises infra commands on one home folder. The lock is a kernel advisory lock,
// released when the process exits, so a crash leaves no stale lock.
func lockHome(home string) (func(), error) {
	path := filepath.Join(home, "infra.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		return nil, fmt.Errorf("another goplt infra command is running on %s (pid %s): wait for it, or stop it", home, string(holder))
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(fmt.Sprint(os.Getpid())), 0)
	return func() {
		_ = f.Truncate(0)
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
