package kernel

import (
	"flag"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/goplt/goplt/internal/envvar"
	"github.com/goplt/goplt/internal/telemetry"
)

// Config is what an app needs to know at start. Each field comes from a flag, else from the
// environment variable named in its flag's help (the names `dapr run` and `goplt run` set).
type Config struct {
	AppID        string // APP_ID
	Port         int    // APP_PORT: where the app listens (only its sidecar calls it)
	ListenHost   string // GOPLT_LISTEN_HOST, default 127.0.0.1
	DaprGRPCPort int    // DAPR_GRPC_PORT: the own sidecar's gRPC API
	DaprHTTPPort int    // DAPR_HTTP_PORT: the own sidecar's HTTP API
	// AppAPIToken is what the sidecar presents to the app (APP_API_TOKEN); calls without it
	// are refused, so no other local process can drive the app.
	AppAPIToken string
	// DaprAPIToken is what the app presents to its sidecar (DAPR_API_TOKEN).
	DaprAPIToken string
	DatabaseURL  string // GOPLT_DATABASE_URL
	DBSchema     string // GOPLT_DB_SCHEMA, default the module's name
	PubSub       string // GOPLT_PUBSUB: the pub/sub component name, default "pubsub"
	SecretStore  string // GOPLT_SECRET_STORE: the secret store component name, default "secretstore"
	// StateStore is the state store component the app's manifest declares (GOPLT_STATE_STORE;
	// its first, if several); empty if none.
	StateStore string
	LogLevel   slog.Level
	// Profiler is where Go's profiler listens (GOPLT_PPROF, e.g. 127.0.0.1:6060); empty: off.
	Profiler string
	// TraceSampling is the share of new traces sampled (GOPLT_TRACE_SAMPLING_RATE, 0..1); spans
	// are exported only when OTEL_EXPORTER_OTLP_ENDPOINT names a receiver.
	TraceSampling float64
	// Volumes holds the app's declared volumes as <app id>/<volume> (GOPLT_VOLUMES).
	Volumes string
	// ShutdownTimeout bounds the graceful stop (GOPLT_SHUTDOWN_TIMEOUT, default 10s).
	ShutdownTimeout time.Duration
	// MigrateOnly applies the migrations and exits (the Kubernetes migration Jobs run this).
	MigrateOnly bool
}

var identRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// LoadConfig parses flags (args without the program name) over environment defaults.
func LoadConfig(args []string, getenv func(string) string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("app", flag.ContinueOnError)
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	envInt := func(name string, def int) int {
		v, err := strconv.Atoi(env(name, strconv.Itoa(def)))
		if err != nil {
			return -1 // reported by Validate as out of range
		}
		return v
	}
	fs.StringVar(&c.AppID, "app-id", env("APP_ID", ""), "Dapr app id (env APP_ID)")
	fs.IntVar(&c.Port, "port", envInt("APP_PORT", 0), "HTTP port the app listens on (env APP_PORT)")
	fs.StringVar(&c.ListenHost, "listen-host", env(envvar.ListenHost, "127.0.0.1"), "address to listen on (env GOPLT_LISTEN_HOST)")
	fs.IntVar(&c.DaprGRPCPort, "dapr-grpc-port", envInt("DAPR_GRPC_PORT", 50001), "sidecar gRPC port (env DAPR_GRPC_PORT)")
	fs.IntVar(&c.DaprHTTPPort, "dapr-http-port", envInt("DAPR_HTTP_PORT", 3500), "sidecar HTTP port (env DAPR_HTTP_PORT)")
	fs.StringVar(&c.DatabaseURL, "database-url", env(envvar.DatabaseURL, ""), "PostgreSQL URL (env GOPLT_DATABASE_URL)")
	fs.StringVar(&c.DBSchema, "db-schema", env(envvar.DBSchema, ""), "database schema, default the module name (env GOPLT_DB_SCHEMA)")
	fs.StringVar(&c.PubSub, "pubsub", env(envvar.PubSub, "pubsub"), "pub/sub component name (env GOPLT_PUBSUB)")
	fs.StringVar(&c.StateStore, "state-store", env(envvar.StateStore, ""), "state store component name (env GOPLT_STATE_STORE)")
	fs.StringVar(&c.SecretStore, "secret-store", env(envvar.SecretStore, "secretstore"), "secret store component name (env GOPLT_SECRET_STORE)")
	fs.StringVar(&c.Profiler, "pprof", env(envvar.PProf, ""), "address for Go's profiler, off when empty (env GOPLT_PPROF)")
	fs.StringVar(&c.Volumes, "volumes", env(envvar.Volumes, ""), "folder of the declared volumes, <app id>/<volume> (env GOPLT_VOLUMES)")
	sampling := fs.String("trace-sampling-rate", env(envvar.TraceSamplingRate, "0"), "share of new traces sampled, 0 to 1 (env GOPLT_TRACE_SAMPLING_RATE)")
	fs.BoolVar(&c.MigrateOnly, "migrate-only", false, "apply the database migrations, then exit")
	level := fs.String("log-level", env(envvar.LogLevel, "info"), "debug, info, warn or error (env GOPLT_LOG_LEVEL)")
	shutdown := fs.String("shutdown-timeout", env(envvar.ShutdownTimeout, "10s"), "graceful stop bound (env GOPLT_SHUTDOWN_TIMEOUT)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	// Tokens only from the environment: flags would show them in `ps`.
	c.AppAPIToken = getenv("APP_API_TOKEN")
	c.DaprAPIToken = getenv("DAPR_API_TOKEN")
	if err := c.LogLevel.UnmarshalText([]byte(*level)); err != nil {
		return c, fmt.Errorf("log level %q: want debug, info, warn or error", *level)
	}
	d, err := time.ParseDuration(*shutdown)
	if err != nil || d <= 0 {
		return c, fmt.Errorf("shutdown timeout %q: want a positive duration such as 10s", *shutdown)
	}
	c.ShutdownTimeout = d
	if c.TraceSampling, err = telemetry.Rate(*sampling); err != nil {
		return c, err
	}
	return c, nil
}

// Validate reports every problem with the configuration at once.
func (c Config) Validate() error {
	var errs []string
	if c.DBSchema != "" && !identRE.MatchString(c.DBSchema) {
		errs = append(errs, fmt.Sprintf("database schema %q must match %s", c.DBSchema, identRE))
	}
	if c.MigrateOnly {
		// A migration job serves nothing: it needs the database, not ports or tokens.
		if c.DatabaseURL == "" {
			errs = append(errs, "--migrate-only needs GOPLT_DATABASE_URL")
		}
	} else {
		errs = append(errs, c.serveProblems()...)
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid configuration:\n  %s", strings.Join(errs, "\n  "))
	}
	return nil
}

// serveProblems checks what an app that serves requests needs.
func (c Config) serveProblems() []string {
	var errs []string
	if c.AppID == "" {
		errs = append(errs, "app id is empty: set APP_ID or --app-id")
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"APP_PORT", c.Port}, {"DAPR_GRPC_PORT", c.DaprGRPCPort}, {"DAPR_HTTP_PORT", c.DaprHTTPPort}} {
		if p.v < 1 || p.v > 65535 {
			errs = append(errs, fmt.Sprintf("%s must be a port in 1-65535", p.name))
		}
	}
	if c.AppAPIToken == "" {
		errs = append(errs, "APP_API_TOKEN is empty: the app accepts calls only from its sidecar, which must present this token (goplt run sets it; with the Dapr CLI export it for both)")
	}
	return errs
}
