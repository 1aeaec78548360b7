// Package kernel is what every goplt app is built on: configuration, JSON logging with app and
// request ids, /healthz and /readyz, graceful shutdown, a Dapr client to the app's own sidecar,
// a PostgreSQL pool confined to the app's schema with ordered migrations, event publishing and
// subscription handlers, and the check that only the app's own sidecar may call it.
//
// An app's main is one line: kernel.Main(mymodule.New()).
package kernel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	dapr "github.com/dapr/go-sdk/client"
	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/goplt/goplt/internal/contracts"
	"github.com/goplt/goplt/internal/envvar"
	"github.com/goplt/goplt/internal/httpx"
	"github.com/goplt/goplt/internal/invoke"
	"github.com/goplt/goplt/internal/outbox"
	"github.com/goplt/goplt/internal/telemetry"
	"github.com/goplt/goplt/internal/token"
)

// Kernel is handed to a module's Init: it collects the module's declarations and gives access
// to the app's dependencies.
type Kernel struct {
	cfg    Config
	module Module
	log    *slog.Logger

	routes     []Route
	declared   []DeclaredRoute // the route table from the manifest (UseRoutes)
	subs       []Subscription
	perms      []PermissionDecl
	migrations fs.FS
	initErrs   []string // problems found while Init declared things, reported by validate

	invoker   *invoke.Client
	tel       *telemetry.Provider
	tracer    trace.Tracer
	metrics   metrics
	verifier  TokenVerifier
	useOutbox bool
	useState  bool
	relay     *outbox.Relay

	db     *pgxpool.Pool
	daprMu sync.RWMutex
	dapr   dapr.Client
	ready  atomic.Bool
	keys   eventKeys

	contracts *contracts.Checker // nil: the module declared none (UseContracts)
	deleted   *deletedSubjects   // nil: the module handles no deletions (SubscribeDeletions)
}

// Invoker returns the client that calls other apps through this app's sidecar; the typed
// clients of the core services are built on it.
func (k *Kernel) Invoker() *invoke.Client { return k.invoker }

// TokenVerifier verifies access tokens (*token.Verifier and *token.CachedVerifier fit).
type TokenVerifier interface {
	Verify(ctx context.Context, raw string) (*token.Claims, error)
}

// UseVerifier sets how Principal verifies access tokens (typically the auth client's
// NewVerifier over Invoker(), cached). Call it in Init.
func (k *Kernel) UseVerifier(v TokenVerifier) { k.verifier = v }

// UseOutbox gives the module a transactional outbox: the kernel creates the outbox table in the
// module's schema and runs the relay that publishes its rows through the sidecar. Add events
// with outbox.Add inside Transact. Call it in Init.
func (k *Kernel) UseOutbox() { k.useOutbox = true }

// Transact runs f in a database transaction; after a commit it makes the outbox relay publish
// what f added at once.
func (k *Kernel) Transact(ctx context.Context, f func(pgx.Tx) error) error {
	if err := pgx.BeginFunc(ctx, k.db, f); err != nil {
		return err
	}
	if k.relay != nil {
		k.relay.Kick()
	}
	return nil
}

// ErrNoToken is returned by Principal for a request without a bearer token.
var ErrNoToken = errors.New("no bearer token")

// Principal returns the verified claims of the request's bearer token (the gateway forwards
// the client's Authorization header). Modules use it for object-level checks, such as "only
// the author may edit"; the gateway has already checked the route's permission. In a module
// that handles deletions (SubscribeDeletions), a deleted subject's token is refused with
// ErrSubjectDeleted.
func (k *Kernel) Principal(r *http.Request) (*token.Claims, error) {
	if k.verifier == nil {
		return nil, errors.New("the module set no token verifier (kernel.UseVerifier)")
	}
	h := r.Header.Get("Authorization")
	raw, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || raw == "" {
		return nil, ErrNoToken
	}
	c, err := k.verifier.Verify(r.Context(), raw)
	if err != nil {
		return nil, err
	}
	if k.deleted != nil {
		if k.deleted.has(c.Subject) {
			return nil, ErrSubjectDeleted
		}
		setSubject(r.Context(), c.Subject) // the request's database calls are guarded from now on
	}
	return c, nil
}

// Config returns the app's configuration.
func (k *Kernel) Config() Config { return k.cfg }

// Volume returns the folder of a volume the module's manifest declares (spec.app.volumes),
// creating it when missing: $GOPLT_VOLUMES/<app id>/<name>, which goplt run points at the
// local stack's home and a Kubernetes Deployment at the volume's claim.
func (k *Kernel) Volume(name string) (string, error) {
	if k.cfg.Volumes == "" {
		return "", fmt.Errorf("volume %s: %s is not set (declare the volume in the manifest and run through goplt)", name, envvar.Volumes)
	}
	dir := filepath.Join(k.cfg.Volumes, k.cfg.AppID, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("volume %s: %w", name, err)
	}
	return dir, nil
}

// UseStateStore declares that the module keeps data in the Dapr state store its manifest
// declares (spec.state; the first, if several) and returns that component's name, for the
// sidecar client's state calls (Dapr). The app refuses to start when none is configured.
func (k *Kernel) UseStateStore() string {
	k.useState = true
	return k.cfg.StateStore
}

// Log returns the app's logger. Log with the request's context (InfoContext and so on) to
// include its request id.
func (k *Kernel) Log() *slog.Logger { return k.log }

// DB returns the pool confined to the module's schema (nil when the app has no database).
// It is connected after Init returns, so use it in handlers and Start, not in Init.
func (k *Kernel) DB() *pgxpool.Pool { return k.db }

// Dapr returns the client to the app's own sidecar, or an error while it is not connected yet.
func (k *Kernel) Dapr() (dapr.Client, error) {
	k.daprMu.RLock()
	defer k.daprMu.RUnlock()
	if k.dapr == nil {
		return nil, errors.New("the Dapr sidecar is not connected yet")
	}
	return k.dapr, nil
}

// WaitDapr returns the sidecar client once connected, or ctx's error.
func (k *Kernel) WaitDapr(ctx context.Context) (dapr.Client, error) {
	for {
		if c, err := k.Dapr(); err == nil {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the sidecar: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Secret reads a secret (its fields) from the app's secret store through its sidecar. It
// waits for the sidecar and retries while the sidecar is still loading its components, until
// ctx ends.
func (k *Kernel) Secret(ctx context.Context, name string) (map[string]string, error) {
	for {
		c, err := k.WaitDapr(ctx)
		if err != nil {
			return nil, err
		}
		sec, err := c.GetSecret(ctx, k.cfg.SecretStore, name, nil)
		if err == nil {
			return sec, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("read secret %s from store %s: %w", name, k.cfg.SecretStore, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Main runs the module until SIGINT or SIGTERM and exits the process: status 0 after a clean
// stop, 1 on a failure (already logged), 2 on bad configuration.
func Main(m Module) {
	// The SDK logs to stdout with the standard logger; the kernel logs what matters as JSON.
	dapr.SetLogger(nil)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := Run(ctx, m, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	var cfgErr *ConfigError
	switch {
	case errors.As(err, &cfgErr):
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	case err != nil:
		os.Exit(1)
	}
}

// ConfigError is a configuration problem found before the app started.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// Run runs the module until ctx ends. Logs go to logOut as JSON lines.
func Run(ctx context.Context, m Module, args []string, getenv func(string) string, logOut io.Writer) error {
	cfg, err := LoadConfig(args, getenv)
	if err != nil {
		return &ConfigError{err}
	}
	if err := cfg.Validate(); err != nil {
		return &ConfigError{err}
	}
	if cfg.DBSchema == "" {
		cfg.DBSchema = m.Name()
	}
	if cfg.AppID == "" {
		cfg.AppID = m.Name() // --migrate-only may run without APP_ID
	}
	tel, err := telemetry.New(ctx, cfg.AppID, cfg.TraceSampling, getenv)
	if err != nil {
		return &ConfigError{err}
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx) // what is still buffered goes out; a collector that is gone loses it
	}()
	k := newKernel(cfg, m, NewLogger(logOut, cfg.AppID, cfg.LogLevel, tel), tel)
	if err := k.run(ctx); err != nil {
		k.log.Error("app stopped with an error", "err", err)
		return err
	}
	return nil
}

// Check runs m's Init, which does no I/O, and validates what it declared: the handlers against
// the route table from the manifest, permissions, subscriptions, the same checks the app makes
// when it starts. Each app's tests call it, so a handler that drifts from the manifest fails
// `go test` before it fails a start.
func Check(m Module) error {
	cfg := Config{AppID: m.Name(), DBSchema: m.Name()}
	k := newKernel(cfg, m, slog.New(slog.DiscardHandler), telemetry.Off())
	if err := m.Init(k); err != nil {
		return fmt.Errorf("init %s: %w", m.Name(), err)
	}
	return k.validate()
}

func newKernel(cfg Config, m Module, log *slog.Logger, tel *telemetry.Provider) *Kernel {
	k := &Kernel{cfg: cfg, module: m, log: log, tel: tel, tracer: tel.Tracer("github.com/goplt/goplt/internal/kernel"),
		invoker: invoke.New(cfg.DaprHTTPPort, cfg.DaprAPIToken).Traced(tel)}
	k.initEventKeys()
	k.initMetrics()
	return k
}

// Tracer returns the app's tracer, for a module's own spans (a no-op one when tracing is off).
func (k *Kernel) Tracer() trace.Tracer { return k.tracer }

func (k *Kernel) run(ctx context.Context) error {
	if err := k.module.Init(k); err != nil {
		return fmt.Errorf("init %s: %w", k.module.Name(), err)
	}
	if err := k.validate(); err != nil {
		return err
	}
	if k.useState && k.cfg.StateStore == "" {
		return &ConfigError{Err: fmt.Errorf("%s keeps data in a state store, but none is configured: declare one in its manifest (spec.state) and run it through goplt, or set %s", k.module.Name(), envvar.StateStore)}
	}
	if k.cfg.DatabaseURL != "" {
		configure := func(c *pgxpool.Config) {
			if k.tel.Enabled() {
				// A span per statement: its text with placeholders, never the values.
				c.ConnConfig.Tracer = otelpgx.NewTracer(otelpgx.WithTracerProvider(k.tel))
			}
			if k.deleted != nil {
				k.deleted.configurePool(c)
			}
		}
		pool, err := openPool(ctx, k.cfg.DatabaseURL, k.cfg.DBSchema, configure)
		if err != nil {
			return err
		}
		k.db = pool
		defer pool.Close()
		if k.useOutbox {
			sub, _ := fs.Sub(outbox.Migrations, "migrations")
			if err := migrate(ctx, pool, k.cfg.DBSchema, "outbox", sub, k.log); err != nil {
				return err
			}
		}
		if k.deleted != nil {
			sub, _ := fs.Sub(subjectMigrations, "migrations/subjects")
			if err := migrate(ctx, pool, k.cfg.DBSchema, "subjects", sub, k.log); err != nil {
				return err
			}
			if !k.cfg.MigrateOnly {
				if err := k.deleted.load(ctx, pool); err != nil {
					return fmt.Errorf("read deleted subjects: %w", err)
				}
			}
		}
		if k.migrations != nil {
			if err := migrate(ctx, pool, k.cfg.DBSchema, "", k.migrations, k.log); err != nil {
				return err
			}
		}
	} else if k.migrations != nil || k.useOutbox {
		return errors.New("the module has migrations or an outbox but GOPLT_DATABASE_URL is not set")
	}
	if k.cfg.MigrateOnly {
		k.log.Info("migrations applied; exiting (--migrate-only)")
		return nil
	}

	ln, err := net.Listen("tcp", net.JoinHostPort(k.cfg.ListenHost, strconv.Itoa(k.cfg.Port)))
	if err != nil {
		return fmt.Errorf("listen on %s:%d: %w", k.cfg.ListenHost, k.cfg.Port, err)
	}
	srv := &http.Server{
		Handler:           k.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(k.log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	k.log.Info("listening", "addr", ln.Addr().String(), "routes", len(k.routes), "subscriptions", len(k.subs))

	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	if err := httpx.StartProfiler(runCtx, k.cfg.Profiler, k.log); err != nil {
		_ = srv.Close()
		return err
	}
	daprDone := make(chan struct{})
	go func() {
		defer close(daprDone)
		k.connectDapr(runCtx)
	}()
	if k.deleted != nil && k.db != nil {
		go k.deleted.follow(runCtx, k.db)
	}
	if k.useOutbox {
		if err := k.observeOutbox(); err != nil {
			_ = srv.Close()
			return fmt.Errorf("outbox metrics: %w", err)
		}
		// Outbox rows were checked against the contract when they were added.
		k.relay = outbox.NewRelay(k.db, k.publish, k.log, time.Second)
		go k.relay.Run(runCtx)
	}
	if s, ok := k.module.(Starter); ok {
		if err := s.Start(runCtx); err != nil {
			_ = srv.Close()
			return fmt.Errorf("start %s: %w", k.module.Name(), err)
		}
	}
	// Start-up work (migrations, a module's Start: identity hashes two passwords at 19 MiB
	// each) leaves garbage that the runtime would return to the OS only minutes later; an idle
	// app should not sit on it.
	debug.FreeOSMemory()
	k.ready.Store(true)

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	}
	k.log.Info("stopping")
	k.ready.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), k.cfg.ShutdownTimeout)
	defer cancel()
	var errs []error
	if err := srv.Shutdown(sctx); err != nil {
		errs = append(errs, fmt.Errorf("drain http: %w", err))
	}
	if s, ok := k.module.(Stopper); ok {
		if err := s.Stop(sctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", k.module.Name(), err))
		}
	}
	cancelRun()
	<-daprDone
	k.daprMu.Lock()
	if k.dapr != nil {
		k.dapr.Close()
	}
	k.daprMu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	k.log.Info("stopped")
	return nil
}

// dialSidecar connects to the sidecar's gRPC API within 5 s. The API token is added to each
// call's metadata here rather than by the Dapr SDK, whose interceptor replaces the outgoing
// metadata (go-sdk 1.13: metadata.NewOutgoingContext) and so drops the traceparent that puts
// a publish into the caller's trace.
func dialSidecar(ctx context.Context, addr, token string) (*grpc.ClientConn, error) {
	withToken := func(ctx context.Context) context.Context {
		if token == "" {
			return ctx
		}
		return metadata.AppendToOutgoingContext(ctx, "dapr-api-token", token)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return invoker(withToken(ctx), method, req, reply, cc, opts...)
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			return streamer(withToken(ctx), desc, cc, method, opts...)
		}))
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn.Connect()
	for st := conn.GetState(); st != connectivity.Ready; st = conn.GetState() {
		if !conn.WaitForStateChange(wctx, st) {
			conn.Close()
			return nil, fmt.Errorf("sidecar gRPC %s: %s", addr, st)
		}
	}
	return conn, nil
}

// connectDapr dials the sidecar until it answers: the sidecar may start after the app.
func (k *Kernel) connectDapr(ctx context.Context) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(k.cfg.DaprGRPCPort))
	for attempt := 0; ; attempt++ {
		conn, err := dialSidecar(ctx, addr, k.cfg.DaprAPIToken)
		if err == nil {
			k.daprMu.Lock()
			k.dapr = dapr.NewClientWithConnection(conn)
			k.daprMu.Unlock()
			k.log.Info("connected to the sidecar", "addr", addr)
			return
		}
		if attempt%10 == 9 {
			k.log.Warn("sidecar not reachable yet", "addr", addr, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}
