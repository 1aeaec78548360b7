// Dapr resources: components, subscriptions and resiliency, per profile.

package compile

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/goplt/goplt/internal/manifest"
)

// Dapr resource shapes (the subset goplt emits), field order as in Dapr's docs.
type (
	objectMeta struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace,omitempty"`
		Labels    map[string]string `yaml:"labels,omitempty"`
	}
	resource struct {
		APIVersion string         `yaml:"apiVersion"`
		Kind       string         `yaml:"kind"`
		Metadata   objectMeta     `yaml:"metadata"`
		Spec       any            `yaml:"spec"`
		Auth       *componentAuth `yaml:"auth,omitempty"`
		Scopes     []string       `yaml:"scopes,omitempty"`
	}
	componentAuth struct {
		SecretStore string `yaml:"secretStore"`
	}
	componentSpec struct {
		Type    string `yaml:"type"`
		Version string `yaml:"version"`
		// Always written, as [] when empty: Dapr's Component CRD requires spec.metadata.
		Metadata []metadataItem `yaml:"metadata"`
	}
	metadataItem struct {
		Name         string        `yaml:"name"`
		Value        any           `yaml:"value,omitempty"`
		EnvRef       string        `yaml:"envRef,omitempty"`
		SecretKeyRef *secretKeyRef `yaml:"secretKeyRef,omitempty"`
	}
	secretKeyRef struct {
		Name string `yaml:"name"`
		Key  string `yaml:"key,omitempty"`
	}
)

func component(meta objectMeta, c manifest.Component, scopes []string) resource {
	version := c.Version
	if version == "" {
		version = "v1"
	}
	var items []metadataItem
	for _, k := range sortedKeys(c.Metadata) {
		it := metadataItem{Name: k}
		switch v := c.Metadata[k].(type) {
		case map[string]any:
			if e, ok := v["envRef"].(string); ok {
				it.EnvRef = e
			}
			if s, ok := v["secretKeyRef"].(map[string]any); ok {
				ref := &secretKeyRef{}
				ref.Name, _ = s["name"].(string)
				ref.Key, _ = s["key"].(string)
				it.SecretKeyRef = ref
			}
		default:
			it.Value = fmt.Sprint(v) // Dapr metadata values are strings
		}
		items = append(items, it)
	}
	return resource{APIVersion: "dapr.io/v1alpha1", Kind: "Component", Metadata: meta,
		Spec: componentSpec{Type: c.Type, Version: version, Metadata: items}, Scopes: scopes}
}

func (g *gen) components() {
	stateUsers := map[string][]string{}
	var secretUsers []string
	var secretSrc []Source
	stateSrc := map[string][]Source{}
	for _, m := range g.set.Modules {
		id := m.Spec.App.ID
		for i, s := range m.Spec.State {
			stateUsers[s] = append(stateUsers[s], id)
			stateSrc[s] = append(stateSrc[s], Source{"scopes: " + id, m.PosOf(fmt.Sprintf("/spec/state/%d", i))})
		}
		switch {
		case len(m.Spec.Secrets) > 0:
			secretUsers = append(secretUsers, id)
			secretSrc = append(secretSrc, Source{"scopes: " + id + " (declares secrets)", m.PosOf("/spec/secrets")})
		case hasEvents(m) && g.prof.Secrets != nil:
			// Event signing keys (and broker passwords) are in the secret store.
			secretUsers = append(secretUsers, id)
			secretSrc = append(secretSrc, Source{"scopes: " + id + " (signs or verifies events)", m.PosOf("/spec/events")})
		}
		// A component nobody declared a use for is not emitted at all (least privilege).
		if hasEvents(m) {
			g.fromPlatform("spec: component type and metadata", "/pubsub")
			g.brokerCredentialsSource()
			g.from("the component and its scope ("+id+" declares events)", m.PosOf("/spec/events"))
			g.emit(path.Join(g.compDir, PubSubName(id)+".yaml"), g.pubsubComponent(PubSubName(id), id, nil))
		}
		g.broadcastComponent(m)
	}
	if g.prof.State != nil {
		for _, name := range sortedKeys(stateUsers) {
			c := *g.prof.State
			// Each app's keys carry its app id (Dapr's keyPrefix "appid", stated here rather
			// than left to the default), so apps sharing a store never see each other's keys.
			c.Metadata = maps.Clone(c.Metadata)
			if c.Metadata == nil {
				c.Metadata = map[string]any{}
			}
			if _, ok := c.Metadata["keyPrefix"]; !ok {
				c.Metadata["keyPrefix"] = "appid"
			}
			g.fromPlatform("spec: component type and metadata", "/state")
			g.pending = append(g.pending, stateSrc[name]...)
			g.emit(path.Join(g.compDir, "state-"+name+".yaml"), component(g.meta(name), c, sorted(stateUsers[name])))
		}
	}
	if g.prof.Secrets != nil && len(secretUsers) > 0 {
		g.fromPlatform("spec: component type and metadata", "/secrets")
		g.pending = append(g.pending, secretSrc...)
		g.emit(path.Join(g.compDir, "secretstore.yaml"), component(g.meta(secretStoreName), *g.prof.Secrets, sorted(secretUsers)))
	}
}

type subscriptionSpec struct {
	PubsubName      string            `yaml:"pubsubname"`
	Topic           string            `yaml:"topic"`
	Routes          map[string]string `yaml:"routes"`
	DeadLetterTopic string            `yaml:"deadLetterTopic"`
	BulkSubscribe   *bulkSubscribe    `yaml:"bulkSubscribe,omitempty"`
}

type bulkSubscribe struct {
	Enabled            bool `yaml:"enabled"`
	MaxMessagesCount   int  `yaml:"maxMessagesCount"`
	MaxAwaitDurationMs int  `yaml:"maxAwaitDurationMs"`
}

// bulk turns a manifest's bulk settings into Dapr's, with goplt's defaults.
func bulk(b *manifest.Bulk) *bulkSubscribe {
	if b == nil {
		return nil
	}
	out := &bulkSubscribe{Enabled: true, MaxMessagesCount: b.MaxMessages, MaxAwaitDurationMs: b.MaxAwaitMs}
	if out.MaxMessagesCount == 0 {
		out.MaxMessagesCount = manifest.DefaultBulkMaxMessages
	}
	if out.MaxAwaitDurationMs == 0 {
		out.MaxAwaitDurationMs = manifest.DefaultBulkMaxAwaitMs
	}
	return out
}

// broadcastComponent emits the pub/sub component of m's broadcast subscriptions: the same
// broker, but a consumer group of its own per sidecar ({uuid} is expanded by daprd) starting
// at the newest events, so every replica sees every event published while it runs.
func (g *gen) broadcastComponent(m *manifest.Module) {
	i := slices.IndexFunc(m.Spec.Events.Subscribes, func(s manifest.Subscription) bool { return s.Broadcast })
	if i < 0 {
		return
	}
	id := m.Spec.App.ID
	g.from("the component and its scope (broadcast subscription)", m.PosOf(fmt.Sprintf("/spec/events/subscribes/%d/broadcast", i)))
	override := map[string]any{"consumerID": "{appID}-{uuid}"}
	if g.prof.PubSub.Type == "pubsub.kafka" {
		override = map[string]any{"consumerGroup": "{appID}-{uuid}", "initialOffset": "newest"}
	}
	g.fromPlatform("spec: component type and metadata (consumer group made per sidecar)", "/pubsub")
	g.brokerCredentialsSource()
	g.emit(path.Join(g.compDir, broadcastPubSubName(id)+".yaml"), g.pubsubComponent(broadcastPubSubName(id), id, override))
}

func (g *gen) subscriptions() {
	for _, m := range g.set.Modules {
		for i, s := range m.Spec.Events.Subscribes {
			name := m.Spec.App.ID + "-" + strings.ReplaceAll(s.Topic, ".", "-")
			ps := PubSubName(m.Spec.App.ID)
			if s.Broadcast {
				ps = broadcastPubSubName(m.Spec.App.ID)
			}
			g.from("the whole subscription", m.PosOf(fmt.Sprintf("/spec/events/subscribes/%d", i)))
			g.emit(path.Join(g.compDir, "subscription-"+name+".yaml"), resource{
				APIVersion: "dapr.io/v2alpha1", Kind: "Subscription", Metadata: g.meta(name),
				Spec: subscriptionSpec{PubsubName: ps, Topic: s.Topic,
					Routes: map[string]string{"default": s.Route}, DeadLetterTopic: s.DeadLetter(), BulkSubscribe: bulk(s.Bulk)},
				Scopes: []string{m.Spec.App.ID},
			})
		}
	}
}

// Resiliency defaults: finite retries of what is safe to retry, and a circuit breaker on
// publishing. Dapr 1.16 turns every non-2xx/3xx invocation response into a policy error, 4xx
// included, so retries match only 503 and gRPC Unavailable (plus connection errors, which carry
// no status): the callee's sidecar could not reach the app, so nothing was applied. There is no
// timeout by default, because Dapr retries a call its timeout cut short although the app may
// have applied it (a POST twice): callers bound their calls with their own deadlines (the
// gateway's, the typed clients'), which cancel rather than retry. A module that sets a timeout
// gets no retries unless it also sets `retries` (say, for idempotent routes only). App circuit
// breakers are opt-in per module (circuitBreakerFailures), because one client's bad requests
// would otherwise open the breaker for every caller.
const (
	defaultRetries  = 3
	publishFailures = 5
)

type (
	retryMatching struct {
		HTTPStatusCodes string `yaml:"httpStatusCodes"`
		GRPCStatusCodes string `yaml:"gRPCStatusCodes"`
	}
	retryPolicy struct {
		Policy      string         `yaml:"policy"`
		MaxInterval string         `yaml:"maxInterval,omitempty"`
		Duration    string         `yaml:"duration,omitempty"`
		MaxRetries  int            `yaml:"maxRetries"`
		Matching    *retryMatching `yaml:"matching,omitempty"`
	}
	breakerPolicy struct {
		MaxRequests int    `yaml:"maxRequests"`
		Interval    string `yaml:"interval"`
		Timeout     string `yaml:"timeout"`
		Trip        string `yaml:"trip"`
	}
	policyRef struct {
		Timeout        string `yaml:"timeout,omitempty"`
		Retry          string `yaml:"retry,omitempty"`
		CircuitBreaker string `yaml:"circuitBreaker,omitempty"`
	}
	resiliencySpec struct {
		Policies struct {
			Timeouts        map[string]string        `yaml:"timeouts"`
			Retries         map[string]retryPolicy   `yaml:"retries"`
			CircuitBreakers map[string]breakerPolicy `yaml:"circuitBreakers"`
		} `yaml:"policies"`
		Targets struct {
			Apps       map[string]policyRef            `yaml:"apps,omitempty"`
			Components map[string]map[string]policyRef `yaml:"components,omitempty"`
		} `yaml:"targets"`
	}
)

func breaker(failures int) breakerPolicy {
	return breakerPolicy{MaxRequests: 1, Interval: "30s", Timeout: "30s", Trip: fmt.Sprintf("consecutiveFailures >= %d", failures)}
}

func (g *gen) resiliency() {
	if len(g.set.Modules) == 0 {
		return
	}
	var spec resiliencySpec
	spec.Policies.Timeouts = map[string]string{}
	spec.Policies.Retries = map[string]retryPolicy{}
	spec.Policies.CircuitBreakers = map[string]breakerPolicy{}
	spec.Targets.Apps = map[string]policyRef{}
	scopes := append([]string(nil), g.prof.DevCallers...)
	var pubsubs []string
	for _, m := range g.set.Modules {
		id := m.Spec.App.ID
		scopes = append(scopes, id)
		retries := defaultRetries
		ref := policyRef{Retry: id}
		g.from("policies and target for app "+id, m.PosOf("/spec/app/id"))
		if r := m.Spec.Resiliency; r != nil {
			g.from("overrides for app "+id, m.PosOf("/spec/resiliency"))
			if r.Timeout != "" {
				// Dapr retries a call its timeout cut short, though the app may have applied
				// it: with a timeout, retries are off unless the manifest asks for them.
				spec.Policies.Timeouts[id] = r.Timeout
				ref.Timeout = id
				retries = 0
			}
			if r.Retries != nil {
				retries = *r.Retries
			}
			if r.CircuitBreakerFailures != 0 {
				spec.Policies.CircuitBreakers[id] = breaker(r.CircuitBreakerFailures)
				ref.CircuitBreaker = id
			}
		}
		spec.Policies.Retries[id] = retryPolicy{Policy: "exponential", MaxInterval: "2s", MaxRetries: retries,
			Matching: &retryMatching{HTTPStatusCodes: "503", GRPCStatusCodes: "14"}}
		spec.Targets.Apps[id] = ref
		if hasEvents(m) {
			pubsubs = append(pubsubs, PubSubName(id))
		}
	}
	if len(pubsubs) > 0 {
		// Publishing: bounded retries, then a breaker so a dead broker fails fast (the outbox
		// keeps what was not published). Delivery to subscribers: a handler's RETRY is a
		// transient failure (its database down, say), retried until it passes, backing off to
		// 10 s, holding the partition: a bounded budget would send good events to the dead-letter
		// topic during any outage longer than it (the chaos suite lost events to a 10 s
		// PostgreSQL stop with 5 retries of 1 s). What can never succeed the kernel DROPs, and
		// Dapr dead-letters it at once.
		spec.Policies.Retries["publish"] = retryPolicy{Policy: "exponential", MaxInterval: "2s", MaxRetries: 3}
		spec.Policies.Retries["deliver"] = retryPolicy{Policy: "exponential", MaxInterval: "10s", MaxRetries: -1}
		spec.Policies.CircuitBreakers["publish"] = breaker(publishFailures)
		spec.Targets.Components = map[string]map[string]policyRef{}
		for _, ps := range pubsubs {
			spec.Targets.Components[ps] = map[string]policyRef{
				"outbound": {Retry: "publish", CircuitBreaker: "publish"},
				"inbound":  {Retry: "deliver"},
			}
		}
	}
	g.emit(path.Join(g.compDir, "resiliency.yaml"), resource{APIVersion: "dapr.io/v1alpha1", Kind: "Resiliency",
		Metadata: g.meta("goplt"), Spec: spec, Scopes: sorted(scopes)})
}
