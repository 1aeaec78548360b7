// Command gateway is the API gateway: the single entry point for external traffic.
//
// It is not a kernel module (docs/gateway.md says why) but takes the settings every app shares
// as the kernel does (kernel.LoadConfig: APP_ID, APP_PORT, GOPLT_LISTEN_HOST, DAPR_HTTP_PORT,
// DAPR_API_TOKEN, GOPLT_PUBSUB, GOPLT_SECRET_STORE, GOPLT_LOG_LEVEL, GOPLT_PPROF,
// GOPLT_TRACE_SAMPLING_RATE, GOPLT_SHUTDOWN_TIMEOUT, and their flags). Its own: GOPLT_ROUTES
// (the compiled route table), GOPLT_GATEWAY_CORS_ORIGINS (comma-separated),
// GOPLT_GATEWAY_RATE_LIMITS (class=rate:burst,...; default
// "default=100:200,subject=100:200,login=5:10,register=2:5"), GOPLT_GATEWAY_BODY_LIMIT (bytes,
// default 1 MiB), GOPLT_GATEWAY_DECISION_TTL (default 5s), GOPLT_GATEWAY_TIMEOUT (default 10s),
// GOPLT_GATEWAY_IDEMPOTENCY_TTL (default 24h; Idempotency-Key records live in GOPLT_STATE_STORE,
// the state store its manifest declares).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	auth "github.com/goplt/goplt/apps/auth/client"
	authz "github.com/goplt/goplt/apps/authz/client"
	"github.com/goplt/goplt/apps/gateway/contract"
	"github.com/goplt/goplt/apps/gateway/gateway"
	"github.com/goplt/goplt/internal/envvar"
	"github.com/goplt/goplt/internal/eventsig"
	"github.com/goplt/goplt/internal/httpx"
	"github.com/goplt/goplt/internal/invoke"
	"github.com/goplt/goplt/internal/kernel"
	"github.com/goplt/goplt/internal/telemetry"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil)).With("app", "gateway")
	if err := run(); err != nil {
		log.Error("gateway stopped with an error", "err", err)
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run() error {
	// The settings every app shares (ports, tokens, sampling, log level, profiler, shutdown)
	// are parsed as the kernel parses them; the rest are the gateway's own.
	cfg, err := kernel.LoadConfig(os.Args[1:], os.Getenv)
	if err != nil {
		return err
	}
	if cfg.AppID == "" {
		cfg.AppID = "gateway"
	}
	var errs []string
	if cfg.Port < 1 || cfg.Port > 65535 {
		errs = append(errs, "APP_PORT must be a port")
	}
	if cfg.DaprHTTPPort < 1 || cfg.DaprHTTPPort > 65535 {
		errs = append(errs, "DAPR_HTTP_PORT must be a port")
	}
	routesFile := os.Getenv(envvar.Routes)
	if routesFile == "" {
		errs = append(errs, envvar.Routes+" must name the compiled route table (deploy/gateway/routes.json)")
	}
	limits, err := gateway.ParseLimits(env(envvar.GatewayRateLimits, "default=100:200,subject=100:200,login=5:10,register=2:5"))
	if err != nil {
		errs = append(errs, err.Error())
	}
	bodyLimit, err := strconv.ParseInt(env(envvar.GatewayBodyLimit, strconv.Itoa(1<<20)), 10, 64)
	if err != nil || bodyLimit < 1 {
		errs = append(errs, envvar.GatewayBodyLimit+" must be a positive number of bytes")
	}
	durations := map[string]*time.Duration{}
	var ttl, timeout time.Duration
	durations[envvar.GatewayDecisionTTL+"=5s"] = &ttl
	durations[envvar.GatewayTimeout+"=10s"] = &timeout
	var idemTTL time.Duration
	durations[envvar.GatewayIdempotentTTL+"=24h"] = &idemTTL
	for spec, dst := range durations {
		name, def, _ := strings.Cut(spec, "=")
		d, err := time.ParseDuration(env(name, def))
		if err != nil || d < 0 {
			errs = append(errs, name+" must be a duration such as "+def)
		}
		*dst = d
	}
	if idemTTL < time.Second {
		errs = append(errs, envvar.GatewayIdempotentTTL+" must be at least 1s")
	}
	if len(errs) > 0 {
		return errors.New("invalid configuration:\n  " + strings.Join(errs, "\n  "))
	}
	table, err := gateway.LoadTable(routesFile)
	if err != nil {
		return err
	}
	var origins []string
	for _, o := range strings.Split(os.Getenv(envvar.GatewayCORSOrigins), ",") {
		if o = strings.TrimSpace(o); o != "" {
			origins = append(origins, o)
		}
	}
	tel, err := telemetry.New(context.Background(), cfg.AppID, cfg.TraceSampling, os.Getenv)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}()
	// Log lines carry request and trace ids and also go over OTLP.
	log := kernel.NewLogger(os.Stdout, cfg.AppID, cfg.LogLevel, tel)
	var tracer trace.Tracer
	var meter metric.Meter
	if tel.Enabled() {
		// Metrics too go only over OTLP: the gateway's listener is the public one, and serves
		// no /metrics.
		tracer = tel.Tracer("github.com/goplt/goplt/apps/gateway")
		meter = tel.Meters.Meter("goplt/gateway")
	}
	token := cfg.DaprAPIToken
	inv := invoke.New(cfg.DaprHTTPPort, token).Traced(tel)
	sidecar := "http://127.0.0.1:" + strconv.Itoa(cfg.DaprHTTPPort)
	ready := func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, sidecar+"/v1.0/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("sidecar: %w", err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("sidecar health %d", resp.StatusCode)
		}
		return nil
	}
	signer := eventsig.NewSigner(cfg.AppID, func(ctx context.Context, name string) (map[string]string, error) {
		return inv.Secret(ctx, cfg.SecretStore, name)
	})
	check, err := contract.Events().Checker()
	if err != nil {
		return err
	}
	g := gateway.New(gateway.Config{
		Sidecar: sidecar, DaprAPIToken: token, PubSub: cfg.PubSub, Signer: signer, CheckEvent: check.Outgoing, RoutesFile: routesFile,
		CORSOrigins: origins, Limits: limits, DefaultBodyLimit: bodyLimit, RequestTimeout: timeout, DecisionTTL: ttl, Ready: ready,
		IdempotencyStore: cfg.StateStore, IdempotencyTTL: idemTTL, TraceSampling: cfg.TraceSampling, Tracer: tracer, Meter: meter,
	}, table, auth.New(inv).NewVerifier(auth.VerifierOptions{Strict: true}).Cached(100000), authz.New(inv, 2*time.Second), log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	runCtx, cancelRun := context.WithCancel(context.Background())
	g.Run(runCtx)
	if err := httpx.StartProfiler(runCtx, cfg.Profiler, log); err != nil {
		cancelRun()
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.ListenHost, strconv.Itoa(cfg.Port)))
	if err != nil {
		cancelRun()
		return err
	}
	srv := &http.Server{
		Handler: g, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: timeout, WriteTimeout: timeout + 5*time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 32 << 10, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "routes", len(table.Routes))
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		cancelRun()
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	cancelRun()
	g.Wait() // publish the audit events still queued
	log.Info("stopped", "audit_events_lost", g.AuditLost())
	return err
}
