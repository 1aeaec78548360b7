package manifest

import (
	"strconv"
	"strings"
)

// Module is a module.yaml document (apiVersion goplt/v1, kind Module). See
// schemas/module.schema.json and docs/manifest.md.
type Module struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   Metadata   `yaml:"metadata"`
	Spec       ModuleSpec `yaml:"spec"`

	doc *document
}

// Metadata identifies a module.
type Metadata struct {
	Name        string `yaml:"name"`
	Version     string `yaml:"version"`
	Description string `yaml:"description"`
}

// ModuleSpec is what a module declares.
type ModuleSpec struct {
	App         App          `yaml:"app"`
	DependsOn   []Dependency `yaml:"dependsOn"`
	Database    *Database    `yaml:"database"`
	Permissions []Permission `yaml:"permissions"`
	Roles       []Role       `yaml:"roles"`
	Policies    []Policy     `yaml:"policies"`
	Routes      []Route      `yaml:"routes"`
	Events      Events       `yaml:"events"`
	Secrets     []string     `yaml:"secrets"`
	State       []string     `yaml:"state"`
	Resiliency  *Resiliency  `yaml:"resiliency"`
}

// App says how the module's app runs.
type App struct {
	ID         string   `yaml:"id"`
	Build      string   `yaml:"build"`
	Command    []string `yaml:"command"`
	Port       int      `yaml:"port"`
	HealthPath string   `yaml:"healthPath"`
	Restart    string   `yaml:"restart"`
	// Replicas is how many instances run (default 1), each with its own sidecar; they share
	// the app id (Consul spreads calls over the healthy ones) and the consumer groups (Kafka
	// splits each subscribed topic's partitions between them).
	Replicas int `yaml:"replicas"`
	// Volumes are folders the app keeps outside its database, surviving restarts: on the
	// local stack under <home>/data/volumes, on Kubernetes a PersistentVolumeClaim each.
	Volumes []Volume `yaml:"volumes"`
}

// Volume is a persistent folder of one app, found at $GOPLT_VOLUMES/<app id>/<name>.
type Volume struct {
	Name string `yaml:"name"`
	// Size is the claim's request on Kubernetes (a quantity such as 1Gi); default 1Gi.
	Size string `yaml:"size"`
}

// VolumeSize is the claim's request: Size, else 1Gi.
func (v Volume) VolumeSize() string {
	if v.Size == "" {
		return "1Gi"
	}
	return v.Size
}

// Instances is the number of instances the app runs.
func (a App) Instances() int { return max(a.Replicas, 1) }

// Dependency is another module this one calls, with a semver constraint.
type Dependency struct {
	Name    string `yaml:"name"`
	Version string `yaml:"version"`
}

// Database is the module's own schema and its migrations.
type Database struct {
	Schema     string `yaml:"schema"`
	Migrations string `yaml:"migrations"`
}

// Permission is a permission the module defines.
type Permission struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
}

// Role grants permissions.
type Role struct {
	Name        string   `yaml:"name"`
	Description string   `yaml:"description"`
	Permissions []string `yaml:"permissions"`
}

// Policy is an extra ory/ladon policy the module ships, typically with a condition (for
// example: only the author may edit a post). Its actions must be the module's permissions.
type Policy struct {
	ID          string         `yaml:"id"`
	Description string         `yaml:"description"`
	Subjects    []string       `yaml:"subjects"`
	Actions     []string       `yaml:"actions"`
	Resources   []string       `yaml:"resources"`
	Effect      string         `yaml:"effect"`
	Conditions  map[string]any `yaml:"conditions"`
}

// Route is an HTTP route the gateway forwards to the module.
type Route struct {
	Method     string `yaml:"method"`
	Path       string `yaml:"path"`
	Permission string `yaml:"permission"`
	Public     bool   `yaml:"public"`
	// Callers makes the route internal: only these app ids may call it, and the gateway
	// does not expose it.
	Callers   []string `yaml:"callers"`
	Audit     bool     `yaml:"audit"`
	BodyLimit int      `yaml:"bodyLimit"`
	RateLimit string   `yaml:"rateLimit"`
	// Summary is the route's one-line description in the API document.
	Summary string `yaml:"summary"`
	// Request is the JSON Schema file of the request body (<name>.v<n>.json); the gateway
	// refuses a body that breaks it before the module sees it.
	Request string `yaml:"request"`
	// Response is the successful answer: its status and the JSON Schema file of its body.
	Response *Response `yaml:"response"`
}

// Response is a route's successful answer.
type Response struct {
	Status int    `yaml:"status"` // default 200
	Schema string `yaml:"schema"`
}

// SuccessStatus is the status of the route's successful answer: 200 unless declared.
func (r *Response) SuccessStatus() int {
	if r == nil || r.Status == 0 {
		return 200
	}
	return r.Status
}

// Events are the topics a module publishes and subscribes to.
type Events struct {
	Publishes  []Publication  `yaml:"publishes"`
	Subscribes []Subscription `yaml:"subscribes"`
	// Audits makes the module the platform's auditor: it subscribes to every topic a
	// publication marks audit: true (the loader adds those subscriptions).
	Audits *Audits `yaml:"audits"`
}

// Audits is how the auditor receives the audited topics: each at /events/<topic>.
type Audits struct {
	DeadLetterTopic string `yaml:"deadLetterTopic"`
	Bulk            *Bulk  `yaml:"bulk"`
}

// Publication is a topic the module publishes, with its payload schema.
type Publication struct {
	Topic   string `yaml:"topic"`
	Version int    `yaml:"version"` // of the payload published now; 0 means 1
	Schema  string `yaml:"schema"`
	// Audit sends every event on the topic to the auditor (the module with events.audits).
	Audit bool `yaml:"audit"`
}

// PayloadVersion is the version of the payload published now.
func (p Publication) PayloadVersion() int { return max(p.Version, 1) }

// SchemaFor is the schema file of another version of the payload: the same name with
// .v<version>.json (SchemaVersionSuffix).
func (p Publication) SchemaFor(version int) string {
	return strings.TrimSuffix(p.Schema, SchemaVersionSuffix(p.PayloadVersion())) + SchemaVersionSuffix(version)
}

// SchemaVersionSuffix ends the name of a payload schema file of the version.
func SchemaVersionSuffix(version int) string { return ".v" + strconv.Itoa(version) + ".json" }

// Subscription is a topic delivered to one of the module's routes.
type Subscription struct {
	Topic string `yaml:"topic"`
	Route string `yaml:"route"`
	// Accepts lists the payload versions the subscriber reads; empty means the published one.
	Accepts         []int  `yaml:"accepts"`
	DeadLetterTopic string `yaml:"deadLetterTopic"`
	External        bool   `yaml:"external"`
	// Broadcast delivers every event to every replica of the app (a consumer group per
	// sidecar, reading only new events), for caches such as authz's policies; otherwise the
	// replicas share the events.
	Broadcast bool `yaml:"broadcast"`
	// Bulk delivers events in batches (Dapr bulk subscribe), for high-volume consumers.
	Bulk *Bulk `yaml:"bulk"`
}

// Bulk bounds a bulk subscription's batches.
type Bulk struct {
	MaxMessages int `yaml:"maxMessages"`
	MaxAwaitMs  int `yaml:"maxAwaitMs"`
}

// Bulk defaults: Dapr's own (100 messages, 1 s) would hold a lone event for a second.
const (
	DefaultBulkMaxMessages = 100
	DefaultBulkMaxAwaitMs  = 50
)

// DeadLetter is the subscription's dead-letter topic (default <topic>.deadletter).
func (s Subscription) DeadLetter() string {
	if s.DeadLetterTopic != "" {
		return s.DeadLetterTopic
	}
	return s.Topic + ".deadletter"
}

// Resiliency overrides the defaults for calls to this module.
type Resiliency struct {
	Timeout                string `yaml:"timeout"`
	Retries                *int   `yaml:"retries"`
	CircuitBreakerFailures int    `yaml:"circuitBreakerFailures"`
}

// Platform is platform.yaml (kind Platform).
type Platform struct {
	APIVersion string                `yaml:"apiVersion"`
	Kind       string                `yaml:"kind"`
	Metadata   struct{ Name string } `yaml:"metadata"`
	Spec       PlatformSpec          `yaml:"spec"`

	doc *document
}

// PlatformSpec holds the profiles.
type PlatformSpec struct {
	Gateway string `yaml:"gateway"`
	// DefaultRoles are given to every newly registered user.
	DefaultRoles []string           `yaml:"defaultRoles"`
	Profiles     map[string]Profile `yaml:"profiles"`
}

// Profile says which Dapr components implement each building block.
type Profile struct {
	PubSub              Component       `yaml:"pubsub"`
	State               *Component      `yaml:"state"`
	Secrets             *Component      `yaml:"secrets"`
	NameResolution      *NameResolution `yaml:"nameResolution"`
	TracingSamplingRate string          `yaml:"tracingSamplingRate"`
	// IdempotencyTTL is how long the gateway remembers an Idempotency-Key (a Go duration).
	IdempotencyTTL string `yaml:"idempotencyTTL"`
	// OTLPEndpoint is host:port of an OTLP/HTTP receiver (an OpenTelemetry Collector) that
	// every sidecar and app exports its spans to.
	OTLPEndpoint string       `yaml:"otlpEndpoint"`
	DevCallers   []string     `yaml:"devCallers"`
	BrokerUsers  *BrokerUsers `yaml:"brokerUsers"`
	Namespace    string       `yaml:"namespace"`
	ImagePrefix  string       `yaml:"imagePrefix"`
}

// Component is a Dapr component type with its metadata (values, envRef or secretKeyRef).
type Component struct {
	Type     string         `yaml:"type"`
	Version  string         `yaml:"version"`
	Metadata map[string]any `yaml:"metadata"`
}

// BrokerUsers makes every app connect to the broker as its own SASL user (named after its app
// id), limited by ACLs generated from the manifests. Its password is in the secret store.
type BrokerUsers struct {
	Secret         string `yaml:"secret"` // secret name; "{appID}" is replaced by the app id
	Key            string `yaml:"key"`
	StrimziCluster string `yaml:"strimziCluster"` // kubernetes: emit Strimzi KafkaUsers for this cluster
}

// SecretName is the name of app's broker password secret.
func (b BrokerUsers) SecretName(app string) string {
	return strings.ReplaceAll(b.Secret, "{appID}", app)
}

// NameResolution is the Dapr name-resolution component and its configuration.
type NameResolution struct {
	Component     string         `yaml:"component"`
	Configuration map[string]any `yaml:"configuration"`
}
