// Package envvar names the environment variables goplt's processes pass each other: what the
// runner, the Dapr run file and the Kubernetes Deployments set, and what the kernel, the
// gateway and the services read (as Dapr keeps its own in pkg/config/env). A name written
// once here cannot drift between the side that sets it and the side that reads it.
package envvar

// Every app on the kernel.
const (
	DatabaseURL       = "GOPLT_DATABASE_URL"        // PostgreSQL URL
	DBSchema          = "GOPLT_DB_SCHEMA"           // the module's schema (default: its name)
	PubSub            = "GOPLT_PUBSUB"              // the app's own pub/sub component
	SecretStore       = "GOPLT_SECRET_STORE"        // the secret store component
	ListenHost        = "GOPLT_LISTEN_HOST"         // address the app listens on
	LogLevel          = "GOPLT_LOG_LEVEL"           // debug, info, warn, error
	ShutdownTimeout   = "GOPLT_SHUTDOWN_TIMEOUT"    // graceful stop bound
	PProf             = "GOPLT_PPROF"               // address of Go's profiler, off when empty
	Policies          = "GOPLT_POLICIES"            // the compiled ladon policies (role catalogue)
	TraceSamplingRate = "GOPLT_TRACE_SAMPLING_RATE" // the platform's tracing rate, 0 to 1
	Failpoint         = "GOPLT_FAILPOINT"           // crash points for the chaos suite
	Volumes           = "GOPLT_VOLUMES"             // holds <app id>/<volume> for declared volumes
	StateStore        = "GOPLT_STATE_STORE"         // the app's (first) declared state store component
	// OTLPEndpoint and OTLPTracesEndpoint are the OpenTelemetry SDK's own: where an app's
	// exporter sends spans (OTLP/HTTP); tracing is off without either.
	OTLPEndpoint        = "OTEL_EXPORTER_OTLP_ENDPOINT"
	OTLPTracesEndpoint  = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	OTLPMetricsEndpoint = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
	OTLPLogsEndpoint    = "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"
)

// The gateway and the core services.
const (
	Routes               = "GOPLT_ROUTES" // the gateway's compiled route table
	GatewayRateLimits    = "GOPLT_GATEWAY_RATE_LIMITS"
	GatewayCORSOrigins   = "GOPLT_GATEWAY_CORS_ORIGINS"
	GatewayBodyLimit     = "GOPLT_GATEWAY_BODY_LIMIT"
	GatewayTimeout       = "GOPLT_GATEWAY_TIMEOUT"
	GatewayDecisionTTL   = "GOPLT_GATEWAY_DECISION_TTL"
	GatewayIdempotentTTL = "GOPLT_GATEWAY_IDEMPOTENCY_TTL" // how long an Idempotency-Key is remembered
	AuthAccessTTL        = "GOPLT_AUTH_ACCESS_TTL"
	AuthRefreshTTL       = "GOPLT_AUTH_REFRESH_TTL"
	AuthSessionTTL       = "GOPLT_AUTH_SESSION_TTL"
	AuthKeyRefresh       = "GOPLT_AUTH_KEY_REFRESH"
	AuthzPoll            = "GOPLT_AUTHZ_POLL"
	AuditCheckpointEvery = "GOPLT_AUDIT_CHECKPOINT_EVERY"
	AuditWitnessURL      = "GOPLT_AUDIT_WITNESS_URL" // a remote witness audit POSTs checkpoints to
)

// The local stack: what goplt run gives the sidecars (their components' envRefs) and itself.
const (
	KafkaBrokers = "GOPLT_KAFKA_BROKERS" // host:port list of the local broker
	PostgresURL  = "GOPLT_POSTGRES_URL"  // the state store's connection string
	SecretsFile  = "GOPLT_SECRETS_FILE"  // the local file secret store
	Home         = "GOPLT_HOME"          // the local stack's data, logs and state
	Cache        = "GOPLT_CACHE"         // the pinned binaries' build cache
	Daprd        = "GOPLT_DAPRD"         // another daprd to run instead of goplt's
	// DaprdNoActors makes goplt's daprd ignore placement and scheduler addresses (goplt env
	// sets it for the Dapr CLI, which passes them to every run-file app).
	DaprdNoActors = "GOPLT_DAPRD_NO_ACTORS"
)

// Set is "name=value", for an exec.Cmd's environment.
func Set(name, value string) string { return name + "=" + value }
